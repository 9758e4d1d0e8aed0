"""Colour transfer moves an image's colour statistics toward its reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.colour import CLASS_PALETTE, colour_transfer, colourise_labels


def _lab_stats(rgb):
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).reshape(-1, 3)
    return lab.mean(0), lab.std(0)


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:64]
    image = np.stack([xx * 3, yy * 4, np.full_like(xx, 60)], -1) + rng.integers(0, 20, (48, 64, 3))
    ref = np.stack([np.full_like(xx, 200), 120 + yy, 40 + xx], -1) + rng.integers(0, 30, (48, 64, 3))
    ref = cv2.resize(np.clip(ref, 0, 255).astype(np.uint8), (80, 60))  # sizes may differ
    return np.clip(image, 0, 255).astype(np.uint8), ref


def test_reinhard_matches_lab_mean_and_std(pair):
    image, ref = pair
    out = colour_transfer(image, ref, "reinhard-lab")
    assert out.shape == image.shape and out.dtype == np.uint8
    (m0, s0), (mr, sr), (m1, s1) = _lab_stats(image), _lab_stats(ref), _lab_stats(out)
    assert np.all(np.abs(m1 - mr) < 0.25 * np.abs(m0 - mr) + 1.0)
    assert np.all(np.abs(s1 - sr) < 0.25 * np.abs(s0 - sr) + 1.0)


def test_histogram_match_moves_channel_statistics(pair):
    image, ref = pair
    out = colour_transfer(image, ref, "histogram-match")
    assert out.shape == image.shape and out.dtype == np.uint8
    for c in range(3):
        before = abs(image[..., c].mean() - ref[..., c].mean())
        after = abs(out[..., c].mean() - ref[..., c].mean())
        assert after < 0.2 * before + 2.0
        qs = [10, 50, 90]
        assert np.allclose(np.percentile(out[..., c], qs), np.percentile(ref[..., c], qs), atol=6)
    m0, mr, m1 = _lab_stats(image)[0], _lab_stats(ref)[0], _lab_stats(out)[0]
    assert np.linalg.norm(m1 - mr) < 0.3 * np.linalg.norm(m0 - mr)


def test_none_and_unknown(pair):
    image, ref = pair
    assert colour_transfer(image, ref, "none") is image
    with pytest.raises(ValueError, match="reinhard-lab"):
        colour_transfer(image, ref, "hsv")


def test_colourise_labels_uses_the_palette():
    labels = np.array([[0, 1], [28, 5]], np.uint8)
    rgb = colourise_labels(labels)
    assert rgb.shape == (2, 2, 3)
    assert (rgb[1, 1] == CLASS_PALETTE[5]).all() and len(CLASS_PALETTE) == 29
    assert len({tuple(c) for c in CLASS_PALETTE}) == 29  # every class has its own colour
