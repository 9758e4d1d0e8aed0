"""The discriminator's downsampling between scales, against numpy."""

from __future__ import annotations

import numpy as np

from pipeline.jt_env import setup_jittor

jt = setup_jittor("cpu")  # before any pipeline.model import


def test_discriminator_downsampling_averages_only_pixels_inside():
    """Matches a numpy 3x3/stride-2/pad-1 average that excludes the padding (Jittor's own
    count_include_pad=False divides by 9 at the borders)."""
    from pipeline.model.discriminator import downsample

    x = np.random.default_rng(0).normal(size=(2, 3, 7, 10)).astype(np.float32)
    got = downsample(jt.array(x)).numpy()
    pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cnt = np.pad(np.ones(x.shape[2:]), 1)
    h, w = (x.shape[2] + 1) // 2, (x.shape[3] + 1) // 2
    ref = np.zeros((2, 3, h, w), np.float32)
    for i in range(h):
        for j in range(w):
            win = pad[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
            ref[:, :, i, j] = win.sum(axis=(2, 3)) / cnt[2 * i:2 * i + 3, 2 * j:2 * j + 3].sum()
    np.testing.assert_allclose(got, ref, atol=1e-5)
