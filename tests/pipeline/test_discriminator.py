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


def test_the_label_pyramid_gives_what_the_concatenated_input_gives():
    """The discriminator fed the images plus the label map's pyramid (pooled once per call)
    computes what it computes on concat(labels, image) per image, pooled per scale."""
    from pipeline.model.discriminator import MultiscaleDiscriminator, pyramid

    jt.set_global_seed(3)
    rng = np.random.default_rng(1)
    seg = jt.array(rng.random((2, 5, 24, 32)).astype(np.float32))
    images = [jt.array(rng.normal(size=(2, 3, 24, 32)).astype(np.float32)) for _ in range(3)]
    d = MultiscaleDiscriminator(8, 4, 3, 3, spectral=True)
    d.eval()  # no power-iteration step between the two calls
    before = d(jt.concat([jt.concat([seg, im], dim=1) for im in images], dim=0))
    after = d(jt.concat(images, dim=0), pyramid(seg, 3))
    assert len(before) == len(after) == 3
    for fa, fb in zip(before, after):
        assert len(fa) == len(fb) == 4
        for a, b in zip(fa, fb):
            a, b = a.numpy(), b.numpy()
            assert a.shape == b.shape
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-6 * max(1.0, np.abs(a).max()))
