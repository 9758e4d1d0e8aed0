"""The style and ECGAN loss terms compute what they say: each against a numpy reference on tiny
inputs (LAB conversion, colour statistics, per-class statistics, low-pass colour, soft colour
histograms, the pixel contrastive loss and its pixel sampling, the encoder's colour features and
patch shuffle, the xavier init)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")  # spin-waiting threads are slow on a shared CPU

from pipeline.jt_env import setup_jittor  # noqa: E402

jt = setup_jittor("cpu")  # before any pipeline.model import

from pipeline.model.contrastive import multiscale_contrastive, supervised_contrastive  # noqa: E402
from pipeline.model.normalization import SNConv2d, xavier_init  # noqa: E402
from pipeline.model.style import (class_colour_loss, colour_features,  # noqa: E402
                                  colour_lowpass_loss, colour_stats_loss, rgb_to_lab,
                                  shuffle_patches)

RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                       [0.019334, 0.119193, 0.950227]])
WHITE = np.array([0.950456, 1.0, 1.088754])


def np_lab(x: np.ndarray) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> LAB / (100, 110, 110), straight from the CIE formulas."""
    c = np.clip((x.astype(np.float64) + 1) / 2, 0, 1)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = np.einsum("ij,bjhw->bihw", RGB_TO_XYZ, lin) / WHITE[None, :, None, None]
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    lab = np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)
    return lab / np.array([100.0, 110.0, 110.0])[None, :, None, None]


def _images(seed, shape=(2, 3, 8, 12)):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def test_rgb_to_lab_matches_the_cie_formulas_and_opencv():
    import cv2

    x = _images(0)
    np.testing.assert_allclose(rgb_to_lab(jt.array(x)).numpy(), np_lab(x), atol=2e-5)
    # white is L=100, a=b=0; and OpenCV's float LAB agrees
    white = rgb_to_lab(jt.ones((1, 3, 1, 1))).numpy().ravel()
    np.testing.assert_allclose(white, [1, 0, 0], atol=1e-4)
    rgb01 = ((x[0].transpose(1, 2, 0) + 1) / 2).astype(np.float32)
    ocv = cv2.cvtColor(rgb01, cv2.COLOR_RGB2Lab) / np.array([100, 110, 110])
    # (OpenCV's float path uses slightly different constants near the linear branch)
    np.testing.assert_allclose(rgb_to_lab(jt.array(x[:1])).numpy()[0].transpose(1, 2, 0), ocv,
                               atol=5e-3)


def test_colour_stats_loss_is_the_mean_and_std_difference():
    a, b = _images(1), _images(2)
    la, lb = np_lab(a).reshape(2, 3, -1), np_lab(b).reshape(2, 3, -1)
    expected = (np.abs(la.mean(2) - lb.mean(2)).mean() + np.abs(la.std(2) - lb.std(2)).mean())
    got = colour_stats_loss(rgb_to_lab(jt.array(a)), rgb_to_lab(jt.array(b))).item()
    assert got == pytest.approx(expected, rel=1e-4)
    assert colour_stats_loss(rgb_to_lab(jt.array(a)), rgb_to_lab(jt.array(a))).item() < 1e-4


def test_class_colour_loss_weights_each_class_by_its_area():
    a, b = _images(3), _images(4)
    labels = np.zeros((2, 8, 12), np.int64)
    labels[:, :3] = 2
    labels[1, :, :4] = 5  # image 1 has three classes, image 0 two
    seg = np.eye(7, dtype=np.float32)[labels].transpose(0, 3, 1, 2)
    la, lb = np_lab(a), np_lab(b)
    per_image = []
    for i in range(2):
        total = 0.0
        for c in np.unique(labels[i]):
            m = labels[i] == c
            fa, fb = la[i][:, m], lb[i][:, m]
            d = np.abs(fa.mean(1) - fb.mean(1)) + np.abs(fa.std(1) - fb.std(1))
            total += m.mean() * d
        per_image.append(total.mean())
    got = class_colour_loss(rgb_to_lab(jt.array(a)), rgb_to_lab(jt.array(b)), jt.array(seg)).item()
    assert got == pytest.approx(np.mean(per_image), rel=1e-4)


def np_window_means(x: np.ndarray, k: int) -> np.ndarray:
    s = max(1, k // 2)
    h, w = x.shape[2], x.shape[3]
    return np.stack([np.stack([x[:, :, i:i + k, j:j + k].mean((2, 3))
                               for j in range(0, w - k + 1, s)], -1)
                     for i in range(0, h - k + 1, s)], -2)


def test_colour_lowpass_loss_compares_overlapping_window_averages():
    a, b = _images(5), _images(6)
    k = 4
    pa, pb = np_window_means(np_lab(a), k), np_window_means(np_lab(b), k)
    assert pa.shape == (2, 3, 3, 5)  # 8 x 12 pixels, 4 x 4 windows every 2 pixels
    got = colour_lowpass_loss(rgb_to_lab(jt.array(a)), rgb_to_lab(jt.array(b)), k).item()
    assert got == pytest.approx(np.abs(pa - pb).mean(), rel=1e-4)
    # blind to detail inside a 2 x 2 cell: a permutation within every cell changes nothing
    c = a.reshape(2, 3, 4, 2, 6, 2)[:, :, :, ::-1, :, ::-1].reshape(a.shape).copy()
    same = colour_lowpass_loss(rgb_to_lab(jt.array(c)), rgb_to_lab(jt.array(a)), k).item()
    assert same < 1e-5


def np_supcon(f: np.ndarray, labels: np.ndarray, t: float) -> float:
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    s = f @ f.T / t
    m = len(labels)
    losses = []
    for i in range(m):
        pos = [p for p in range(m) if p != i and labels[p] == labels[i]]
        if not pos:
            continue
        denom = np.log(sum(np.exp(s[i, a]) for a in range(m) if a != i))
        losses.append(-np.mean([s[i, p] - denom for p in pos]))
    return float(np.mean(losses))


def test_supervised_contrastive_matches_the_formula():
    rng = np.random.default_rng(7)
    f = rng.normal(size=(9, 5)).astype(np.float32)
    labels = np.array([0, 0, 1, 1, 1, 2, 3, 3, 4])  # classes 2 and 4 have no positive
    got = supervised_contrastive(jt.array(f), labels, 0.5).item()
    assert got == pytest.approx(np_supcon(f, labels, 0.5), rel=1e-4)
    assert supervised_contrastive(jt.array(f[:3]), np.array([0, 1, 2]), 0.5).item() == 0
    # features clustered by class score lower than the same features with labels shuffled
    centres = rng.normal(size=(3, 5)) * 4
    lab = np.repeat(np.arange(3), 4)
    g = (centres[lab] + rng.normal(size=(12, 5)) * 0.1).astype(np.float32)
    assert supervised_contrastive(jt.array(g), lab, 0.1).item() < \
        supervised_contrastive(jt.array(g), rng.permutation(lab), 0.1).item()


def test_multiscale_contrastive_samples_pixels_with_their_class():
    # features that are the one-hot of the class (top / bottom half) score low with those
    # labels and high with labels that cut across them (left / right half)
    labels = np.zeros((2, 8, 8), np.int64)
    labels[:, 4:] = 1
    across = np.zeros_like(labels)
    across[:, :, 4:] = 1
    feat = np.stack([labels, 1 - labels], 1).astype(np.float32) + 0.01
    np.random.seed(0)
    clustered = multiscale_contrastive([jt.array(feat)], labels, 6, 0.1).item()
    np.random.seed(0)
    swapped = multiscale_contrastive([jt.array(feat)], across, 6, 0.1).item()
    assert clustered < swapped - 1
    # the label map is taken at the feature map's scale (here half the size)
    np.random.seed(0)
    half = multiscale_contrastive([jt.array(feat[:, :, ::2, ::2])], labels, 6, 0.1).item()
    assert half == pytest.approx(clustered, abs=0.5)


def test_colour_features_are_lab_moments_and_the_joint_histogram():
    x = _images(8)
    got = colour_features(jt.array(x), 4).numpy()
    lab = np_lab(x).reshape(2, 3, -1)
    np.testing.assert_allclose(got[:, :3], lab.mean(2), atol=2e-5)
    np.testing.assert_allclose(got[:, 3:6], lab.std(2), atol=2e-5)
    for i in range(2):
        q = np.clip(((x[i] + 1) / 2 * 4).astype(int), 0, 3).reshape(3, -1)
        hist = np.bincount((q[0] * 4 + q[1]) * 4 + q[2], minlength=64) / q.shape[1]
        np.testing.assert_allclose(got[i, 6:], np.sqrt(hist), atol=1e-6)
    assert got.shape == (2, 6 + 64)


def test_shuffle_patches_moves_whole_patches():
    x = _images(9, (2, 3, 8, 8))
    perms = np.array([[3, 2, 1, 0], [0, 2, 1, 3]])
    got = shuffle_patches(jt.array(x), 2, perms).numpy()
    patches = x.reshape(2, 3, 2, 4, 2, 4).transpose(0, 2, 4, 1, 3, 5).reshape(2, 4, 3, 4, 4)
    for b in range(2):
        for j in range(4):
            r, c = divmod(j, 2)
            np.testing.assert_array_equal(got[b, :, r * 4:(r + 1) * 4, c * 4:(c + 1) * 4],
                                          patches[b, perms[b, j]])
    # colours are kept exactly: the same multiset of pixel values
    np.testing.assert_array_equal(np.sort(got.ravel()), np.sort(x.ravel()))


def test_xavier_init_has_spade_gain_and_zero_biases():
    from jittor import nn

    net = nn.Sequential(nn.Conv2d(16, 32, 3), SNConv2d(32, 64, 3), nn.Linear(40, 50))
    xavier_init(net, 0.02, np.random.default_rng(0))
    for m, (fin, fout) in zip([net[0], net[1], net[2]], [(144, 288), (288, 576), (40, 50)]):
        w = m.weight.numpy()
        assert w.std() == pytest.approx(0.02 * math.sqrt(2 / (fin + fout)), rel=0.1)
        assert abs(w.mean()) < 3 * w.std() / math.sqrt(w.size)
        assert not m.bias.numpy().any()


def np_soft_hist(x: np.ndarray, bins: int) -> np.ndarray:
    v = np.clip((x + 1) / 2, 0, 1) * (bins - 1)  # (B, 3, H, W)
    w = np.maximum(0, 1 - np.abs(v[..., None] - np.arange(bins)))  # (B, 3, H, W, bins)
    b = x.shape[0]
    w = w.reshape(b, 3, -1, bins)
    joint = np.einsum("bni,bnj,bnk->bijk", w[:, 0], w[:, 1], w[:, 2])
    return joint.reshape(b, -1) / w.shape[2]


def test_soft_histogram_and_its_correlation_loss():
    from pipeline.model.style import colour_hist_loss, soft_histogram

    a, b = _images(10), _images(11)
    ha = np_soft_hist(a, 4)
    np.testing.assert_allclose(soft_histogram(jt.array(a), 4).numpy(), ha, atol=1e-6)
    np.testing.assert_allclose(ha.sum(1), 1.0, atol=1e-6)
    # a pixel exactly on a bin centre puts all its weight there
    one = np.full((1, 3, 1, 1), -1.0, np.float32)
    assert soft_histogram(jt.array(one), 4).numpy()[0, 0] == pytest.approx(1.0)
    hb = np_soft_hist(b, 4)
    corr = [np.corrcoef(ha[i], hb[i])[0, 1] for i in range(2)]
    got = colour_hist_loss(jt.array(a), jt.array(b), 4).item()
    assert got == pytest.approx(1 - np.mean(corr), rel=1e-4)
    assert colour_hist_loss(jt.array(a), jt.array(a), 4).item() < 1e-5


def test_multiscale_contrastive_equals_numpy_on_the_same_pixels():
    """Two scales: at each, the pixels numpy's seeded generator draws, their labels taken from the
    label map at that scale (nearest, by striding), the formula above, then the mean."""
    rng = np.random.default_rng(12)
    labels = rng.integers(0, 3, (2, 8, 12))
    feats = [rng.normal(size=(2, 5, 4, 6)).astype(np.float32),
             rng.normal(size=(2, 5, 8, 12)).astype(np.float32)]
    np.random.seed(3)
    got = multiscale_contrastive([jt.array(f) for f in feats], labels, 7, 0.2).item()
    np.random.seed(3)
    expected = []
    for f in feats:
        b, c, h, w = f.shape
        sy, sx = 8 // h, 12 // w
        small = labels[:, sy // 2::sy, sx // 2::sx]
        rows, labs = [], []
        for i in range(b):
            pos = np.random.choice(h * w, size=7, replace=False)
            rows.append(f[i].reshape(c, -1).T[pos])
            labs.append(small[i].reshape(-1)[pos])
        expected.append(np_supcon(np.concatenate(rows), np.concatenate(labs), 0.2))
    assert got == pytest.approx(np.mean(expected), rel=1e-4)


def test_style_encoder_input_is_random_in_training_and_fixed_otherwise():
    from pipeline.model.style import fixed_permutation, style_encoder_input

    x = jt.array(np.repeat(_images(13, (1, 3, 8, 8)), 3, axis=0))  # three copies of one image
    assert style_encoder_input(x, 0, True) is x and style_encoder_input(x, 1, True) is x
    fixed = shuffle_patches(x, 4, np.tile(fixed_permutation(16), (3, 1))).numpy()
    np.testing.assert_array_equal(style_encoder_input(x, 4, False).numpy(), fixed)
    np.random.seed(0)
    a = style_encoder_input(x, 4, True).numpy()
    np.random.seed(1)
    b = style_encoder_input(x, 4, True).numpy()
    assert not np.array_equal(a, b)  # a new draw every training step
    assert not np.array_equal(a[0], a[1])  # and one per image
    np.testing.assert_array_equal(np.sort(a.ravel()), np.sort(x.numpy().ravel()))
