"""FID term (`fid`): Frechet distance of Inception features, generated images vs the training
photos; KID beside it (`metric_kid`, same features, informative only: the A formula keeps FID).

Features: torch-fidelity's `inception-v3-compat` extractor (`feature_extractor_inception`: uint8
input, TF1-compatible bilinear resize to 299x299 inside, (x - 128) / 128), 2048-d pool features,
weights from `evaluate.fid_weights` (`landscape weights` converts them offline). Statistics in float64; the
distance is computed like torch-fidelity (eigenvalues of sigma1 @ sigma2), so our number equals
`torch_fidelity.calculate_metrics(fid=True)` on the same folders and weights file.

The reference set is the training split only (`inputs.reference_photos`: validation photos, the
ground truth of the scored maps, stay out). Its statistics and features (KID needs them) are
cached in `<cache_dir>/fid-stats/` as an .npz of mu, sigma, features, count and the names' sha256
(written atomically, read with allow_pickle=False) under a key naming the inputs (every file's
name and content sha256), the extractor's weights sha256 and the layer; a later run with the
same photos and weights reuses them.
"""

from __future__ import annotations

import hashlib
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from tqdm import tqdm

from pipeline.core.artifacts import atomic_write_bytes, sha256_file
from pipeline.core.errors import ConfigError, DatasetError
from pipeline.core.imageio import load_photo

from .feature_extractor_inception import (
    EXTRACTOR,
    LAYER,
    images_to_features,
    is_known_fid_weights,
    load_inception,
)
from .inputs import list_images, names_identity
from .metric_kid import KID_SUBSET_SIZE, KID_SUBSETS, features_to_kid
from .registry import Batch, Metric, MetricResult, register_metric

FEATURE_BATCH = 32  # images per Inception forward (memory ~ 32 x 3 x 299 x 299 floats)


# ---------------------------------------------------------------------------- pure functions
def features_to_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> (mu (D,), sigma (D, D)), float64; N must be >= 2."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need (N >= 2, D) features for statistics, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def statistics_to_fid(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance |mu1 - mu2|^2 + tr(s1 + s2 - 2 (s1 s2)^1/2) of two Gaussians.

    tr((s1 s2)^1/2) is the sum of the square roots of the eigenvalues of s1 @ s2 (torch-fidelity's
    formulation; equal to scipy's sqrtm trace and stable for singular covariances).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"statistics shapes differ: {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}")
    diff = mu1 - mu2
    tr_covmean = np.sum(np.sqrt(np.linalg.eigvals(sigma1 @ sigma2).astype(np.complex128)).real)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def features_to_fid(features: np.ndarray, mu_ref: np.ndarray, sigma_ref: np.ndarray) -> float:
    """FID of (N, D) features against reference statistics (mu_ref, sigma_ref).

    For N <= D the sample covariance is S = Xc^T Xc / (N - 1) (Xc: centred features), and the
    non-zero eigenvalues of sigma_ref @ S equal those of the N x N symmetric PSD matrix
    Xc sigma_ref Xc^T / (N - 1); so tr((sigma_ref S)^1/2) comes from one small `eigvalsh`
    instead of a D x D non-symmetric `eigvals` (same value, no noise from the zero eigenvalues,
    seconds faster). For N > D it is `statistics_to_fid`.
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2 or f.shape[1] != np.shape(mu_ref)[0]:
        raise ValueError(f"need (N >= 2, {np.shape(mu_ref)[0]}) features, got shape {f.shape}")
    n, d = f.shape
    if n > d:
        return statistics_to_fid(*features_to_statistics(f), mu_ref, sigma_ref)
    mu = f.mean(axis=0)
    xc = f - mu
    small = xc @ np.asarray(sigma_ref, np.float64) @ xc.T / (n - 1)
    ev = np.linalg.eigvalsh((small + small.T) / 2.0)
    tr_covmean = float(np.sqrt(np.clip(ev, 0.0, None)).sum())
    diff = mu - np.asarray(mu_ref, np.float64)
    tr_sigma = float((xc * xc).sum() / (n - 1))
    return float(diff @ diff + tr_sigma + np.trace(sigma_ref) - 2.0 * tr_covmean)


# ---------------------------------------------------------------------------- statistics
def _decode_batches(files: list[Path], batch_size: int) -> Iterable[list[np.ndarray]]:
    """Decoded images in batches; decoding runs in threads (PIL releases the GIL)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        for start in range(0, len(files), batch_size):
            yield list(pool.map(load_photo, files[start : start + batch_size]))


def folder_key(files: list[Path]) -> str:
    """sha256 over every file's name and content sha256: the identity of a set of photos."""
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def statistics_cache_path(files: list[Path], weights_sha256: str, cache_dir: str | Path) -> tuple[Path, str]:
    """(cache file, key): the key names the photos' contents, the extractor weights and the layer."""
    key_blob = json.dumps(
        {"files": folder_key(files), "weights_sha256": weights_sha256, "extractor": EXTRACTOR, "layer": LAYER,
         "holds": "mu sigma features"},
        sort_keys=True,
    ).encode()
    key = hashlib.sha256(key_blob).hexdigest()
    return Path(cache_dir) / "fid-stats" / f"{EXTRACTOR}-{LAYER}-{key[:32]}.npz", key


def _read_cache(cache: Path, files: list[Path]) -> tuple | None:
    """(mu, sigma, features) from a cache file that fits `files`; None when absent or unreadable."""
    if not cache.is_file():
        return None
    try:
        with np.load(cache, allow_pickle=False) as z:
            mu, sigma, feats = z["mu"], z["sigma"], z["features"]
            count, names = int(z["count"]), str(z["names_sha256"])
    except (OSError, KeyError, ValueError):
        return None
    ok = (mu.shape == (2048,) and sigma.shape == (2048, 2048) and feats.shape == (len(files), 2048)
          and count == len(files) and names == names_identity([p.name for p in files])["names_sha256"])
    return (mu, sigma, feats) if ok else None


def reference_statistics(
    model: Any,
    files: list[Path],
    *,
    weights_sha256: str,
    cache_dir: str | Path,
    batch_size: int,
    device: Any,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(mu, sigma, features (N, 2048) float32, info) of a reference set of photos, read from or
    written to the statistics cache.

    info: {"cache": path, "cached": bool (reused), "count": images, "names_sha256": the names'
    identity, "key": cache key}.
    """
    files = list(files)
    if len(files) < 2:
        raise DatasetError(f"FID needs at least 2 reference photos, found {len(files)}")
    cache, key = statistics_cache_path(files, weights_sha256, cache_dir)
    info = {"cache": str(cache), "cached": True, **names_identity([p.name for p in files]), "key": key}
    found = _read_cache(cache, files)
    if found is not None:
        return (*found, info)
    if cache.is_file():
        log(f"fid: ignoring an unreadable statistics cache {cache}; recomputing it")
    feats = []
    with tqdm(total=len(files), desc="FID reference photos", unit="img", disable=not progress) as bar:
        for images in _decode_batches(files, batch_size):
            feats.append(images_to_features(model, images, device))
            bar.update(len(images))
    features = np.concatenate(feats).astype(np.float32)
    mu, sigma = features_to_statistics(features)
    buf = io.BytesIO()
    np.savez(buf, mu=mu, sigma=sigma, features=features, count=np.int64(len(files)),
             names_sha256=np.str_(info["names_sha256"]))
    atomic_write_bytes(cache, buf.getvalue())
    return mu, sigma, features, {**info, "cached": False}


def folder_statistics(model: Any, folder: str | Path, **kw) -> tuple[np.ndarray, np.ndarray, dict]:
    """(mu, sigma, info) of every photo in a folder (`reference_statistics` of `list_images`)."""
    mu, sigma, _, info = reference_statistics(model, list_images(folder), **kw)
    return mu, sigma, info


@register_metric("fid")
class FID(Metric):
    """FID (the A-board term) and KID (informative) of the generated images against the reference
    set, from one Inception pass over each."""

    term = "fid"
    higher_is_better = False
    needs = frozenset({"reference"})
    informative_terms = ("kid",)

    def __init__(self, cfg, ctx) -> None:
        super().__init__(cfg, ctx)
        if ctx.train_photos_dir is None:
            raise ConfigError("fid needs the training photos: pass --train-photos DIR or --data DIR")
        path = Path(cfg.evaluate.fid_weights)
        self.model = load_inception(path, ctx.device)
        self.weights_path = path.resolve()
        self.weights_sha256 = sha256_file(path)
        self.known_weights = is_known_fid_weights(self.weights_sha256)
        files = ctx.reference_photos if ctx.reference_photos is not None else list_images(ctx.train_photos_dir)
        self.reference_info = ctx.reference_info or {
            "rule": f"every photo of {Path(ctx.train_photos_dir).resolve()}",
            "folder": str(Path(ctx.train_photos_dir).resolve()), **names_identity([p.name for p in files])}
        self.mu_train, self.sigma_train, self.train_features, self.train_info = reference_statistics(
            self.model, files, weights_sha256=self.weights_sha256, cache_dir=ctx.cache_dir,
            batch_size=max(FEATURE_BATCH, cfg.evaluate.batch_size), device=ctx.device, progress=ctx.progress,
        )
        self.features: list[np.ndarray] = []
        self.pending: list[np.ndarray] = []
        self.count = 0

    def _flush(self) -> None:
        if self.pending:
            self.features.append(images_to_features(self.model, self.pending, self.ctx.device))
            self.pending = []

    def update(self, batch: Batch) -> None:
        # Inception runs faster on larger batches; features do not depend on the batch
        self.pending.extend(batch.generated)
        self.count += len(batch.generated)
        if len(self.pending) >= max(FEATURE_BATCH, self.cfg.evaluate.batch_size):
            self._flush()

    def result(self) -> MetricResult:
        self._flush()
        if self.count < 2:
            raise DatasetError(f"fid needs at least 2 generated images, got {self.count}")
        features = np.concatenate(self.features)
        value = features_to_fid(features, self.mu_train, self.sigma_train)
        kid = features_to_kid(features, self.train_features)
        extra = {"train_statistics": self.train_info, "reference_set": self.reference_info,
                 "generated": self.count, "kid": kid}
        return MetricResult(value, None, extra, informative={"kid": kid["mean"]})

    def describe(self) -> dict[str, Any]:
        return {
            "model": str(self.weights_path),
            "model_sha256": self.weights_sha256,
            "variant": f"torch-fidelity {EXTRACTOR}, layer {LAYER}, vs {self.train_info['count']} reference"
            f" photos: {self.reference_info['rule']}; KID beside it ({KID_SUBSETS} subsets of"
            f" min({KID_SUBSET_SIZE}, N))",
            "preprocessing": "uint8 RGB (PIL decode); TF1-compatible bilinear resize to 299x299;"
            " (x - 128) / 128",
            "stand_in": False,
            "note": "" if self.known_weights else "FID weights file is not one of the known"
            " converted/official files (sha256 differs): numbers may not compare with others",
        }
