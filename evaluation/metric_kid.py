"""KID (Kernel Inception Distance): the pure functions, reported by the `fid` metric beside FID.

KID is the unbiased estimate of the squared MMD between two sets of Inception features with the
polynomial kernel k(x, y) = (x.y / D + 1)^3, averaged over random equal-size subsets: unbiased at
any N, so it stays comparable where FID's small-N bias dominates. It is an informative extra; the
A-board formula keeps FID. Computed exactly like torch-fidelity 0.4.0 (`kid_features_to_metric`:
float32 features, `np.random.RandomState(seed).choice` without replacement, set 1 then set 2 per
subset, 100 subsets), so our number equals `torch_fidelity.calculate_metrics(kid=True, ...)` with
the same `kid_subset_size` on the same features.

The subset size adapts to N: min(KID_SUBSET_SIZE, n1, n2) (torch-fidelity's default 1000 refuses
fewer samples); it is recorded with the value.
"""

from __future__ import annotations

import numpy as np

KID_SUBSETS = 100  # torch-fidelity's default
KID_SUBSET_SIZE = 1000  # torch-fidelity's default; smaller sets use all their samples
KID_SEED = 2020  # torch-fidelity's default rng_seed


def kid_subset_size(n1: int, n2: int, cap: int = KID_SUBSET_SIZE) -> int:
    """The subset size used for sets of n1 and n2 samples: min(cap, n1, n2)."""
    return int(min(cap, n1, n2))


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(x @ y.T / D + 1) ** 3 of (m, D) and (n, D) features (torch-fidelity's `kernel_poly`)."""
    return (np.matmul(x, y.T) * (1.0 / x.shape[1]) + 1) ** 3


def kernels_to_mmd2(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    """Unbiased MMD^2 of two (m, m) kernel blocks: the diagonals of k_xx, k_yy left out."""
    m = k_xx.shape[0]
    if m < 2 or k_xx.shape != (m, m) or k_xy.shape != (m, m) or k_yy.shape != (m, m):
        raise ValueError(f"need square kernel blocks of one size >= 2, got {k_xx.shape}, {k_xy.shape}, {k_yy.shape}")
    # torch-fidelity's order of summation (row sums less the diagonal), so float32 rounding agrees
    kt_xx = (k_xx.sum(axis=1) - np.diagonal(k_xx)).sum()
    kt_yy = (k_yy.sum(axis=1) - np.diagonal(k_yy)).sum()
    return float((kt_xx + kt_yy) / (m * (m - 1)) - 2 * k_xy.sum(axis=0).sum() / (m * m))


def features_to_kid(
    features_1: np.ndarray,
    features_2: np.ndarray,
    *,
    subsets: int = KID_SUBSETS,
    subset_size: int | None = None,
    seed: int = KID_SEED,
) -> dict:
    """KID of (n1, D) vs (n2, D) features: {"mean", "std", "subsets", "subset_size", "seed"}.

    subset_size None: `kid_subset_size(n1, n2)`. ValueError for fewer than 2 samples per subset
    or a subset size above either set's size.
    """
    f1 = np.asarray(features_1, dtype=np.float32)
    f2 = np.asarray(features_2, dtype=np.float32)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"need (N, D) features of one D, got {f1.shape} and {f2.shape}")
    n1, n2 = len(f1), len(f2)
    size = kid_subset_size(n1, n2) if subset_size is None else int(subset_size)
    if size < 2 or size > min(n1, n2):
        raise ValueError(f"KID subset size {size} must be in 2..min(n1, n2) = {min(n1, n2)}")
    rng = np.random.RandomState(seed)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        x = f1[rng.choice(n1, size, replace=False)]
        y = f2[rng.choice(n2, size, replace=False)]
        mmds[i] = kernels_to_mmd2(polynomial_kernel(x, x), polynomial_kernel(x, y), polynomial_kernel(y, y))
    return {"mean": float(mmds.mean()), "std": float(mmds.std()), "subsets": subsets,
            "subset_size": size, "seed": seed}
