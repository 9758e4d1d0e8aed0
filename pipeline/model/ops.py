"""Cheaper Jittor formulations of two ops the networks use at every layer; same values and
gradients as jittor.nn's (tests/pipeline/test_model_ops.py checks both against numpy).

- `leaky_relu(x, scale)`: `jt.maximum(x, x * scale)`, one element-wise op in each pass, where
  `nn.leaky_relu` is a compare + ternary (41 -> 15 ms per demo step alone, 205 -> 74 ms at 256x192,
  docs/benchmarks.md#where-jittor-loses). Valid for 0 <= scale <= 1; at x = 0 the gradient is
  `scale`, as nn's.
- `upsample2x(x)`: 2x nearest upsampling as an integer-index reindex, where `nn.interpolate`
  computes float source coordinates and floors them per element (16 -> 7 ms, 113 -> 39 ms).

`tools.step_bench --jittor-previous leaky,upsample` routes these names back to jittor.nn's ops
in a third worker, to measure what they save in the whole step.
"""

from __future__ import annotations

import jittor as jt
from jittor import nn


def leaky_relu(x, scale: float = 0.2):
    return jt.maximum(x, x * scale)


class LeakyReLU(nn.Module):
    def __init__(self, scale: float = 0.2):
        self.scale = scale

    def execute(self, x):
        return leaky_relu(x, self.scale)


def upsample2x(x):
    """= nn.interpolate(x, scale_factor=2, mode="nearest") for (B, C, H, W)."""
    b, c, h, w = x.shape
    return x.reindex([b, c, 2 * h, 2 * w], ["i0", "i1", "i2/2", "i3/2"])
