"""Cheaper Jittor formulations of ops the networks and losses use at every step.

- `upsample2x(x)`: 2x nearest upsampling as an integer-index reindex, where `nn.interpolate`
  computes float source coordinates and floors them per element (16 -> 7 ms per demo step
  alone, 113 -> 39 ms at 256x192, docs/benchmarks.md#where-jittor-loses); same values and
  gradients (tests/pipeline/test_model_ops.py).
- `bmm(a, b)`: batched matrix product as one 2-D matmul per image on CPU (see its doc).
- Not here: leaky ReLU as `jt.maximum(x, x * scale)`. It is 2.7x cheaper alone and gives the
  same values, but in the generator's backward pass it gave other gradients than
  `nn.leaky_relu` (max |diff| 0.24 on one weight's gradient, same forward), and it broke the
  2-ranks-equals-1-process check of tests/pipeline/test_mpi_runs.py; the networks use jittor.nn's.
  tests/pipeline/test_model_ops.py checks the whole generator's gradients against jittor.nn's
  ops, which is how such a difference shows.

`tools.step_bench --jittor-previous upsample` routes `upsample2x` back to jittor.nn's op in a
third worker, to measure what it saves in the whole step.
"""

from __future__ import annotations

import jittor as jt


def upsample2x(x):
    """= nn.interpolate(x, scale_factor=2, mode="nearest") for (B, C, H, W)."""
    b, c, h, w = x.shape
    return x.reindex([b, c, 2 * h, 2 * w], ["i0", "i1", "i2/2", "i3/2"])


def bmm(a, b):
    """(B, n, m) @ (B, m, k) -> (B, n, k).

    On CPU Jittor computes a batched matmul (and its gradients) as a (B, n, m, k) broadcast
    product summed by its generic fused kernels; one 2-D matmul per image is 2-3x faster at the
    shapes the networks use (B = 4, n or k = the 29 classes, m = every pixel), measured forward
    and backward (docs/benchmarks.md). On CUDA Jittor's own goes to cuBLAS's batched matmul."""
    if jt.flags.use_cuda:
        return jt.matmul(a, b)
    return jt.stack([jt.matmul(a[i], b[i]) for i in range(a.shape[0])])
