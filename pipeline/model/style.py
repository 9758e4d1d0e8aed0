"""What makes the generator carry the reference's style: the style encoder's layout-free input and
the colour losses between the generated image and the reference.

- `shuffle_patches`: the reference cut into grid x grid patches put back in a random order (a
  fixed order at test time), so the style encoder can pass colour and texture statistics but not
  the photo's layout (which the label map already gives, and which at test time belongs to
  another scene).
- `rgb_to_lab`: differentiable sRGB -> CIE L*a*b* (D65), scaled to about unit range.
- `colour_features`: the reference's LAB mean and std and its joint RGB histogram as a vector
  (an extra style-encoder input: the encoder's instance norms remove most of the absolute
  colour its convs see).
- `colour_stats_loss`: per-channel mean and standard deviation in LAB, generated vs reference (the
  statistics Reinhard's colour transfer matches after the fact, here learnt by the generator).
- `class_colour_loss`: the same statistics per class region (the label map's), output vs the
  real photo: each class's colour and its spread (texture, gradients), in the photo's style.
- `soft_histogram` / `colour_hist_loss`: 1 - the correlation of soft joint RGB histograms
  (triangular bins) of the output and the real photo: the style term's own measure, made
  differentiable.
- `colour_lowpass_loss`: L1 in LAB between window averages (factor x factor pixels, half
  overlapping) of the generated and the real photo: each region's colour, blind to texture.
"""

from __future__ import annotations

import numpy as np
import jittor as jt
from jittor import nn

from .ops import bmm

# sRGB (linear) -> XYZ, rows X, Y, Z; D65 white point
_RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]], np.float32)
_WHITE = np.array([0.950456, 1.0, 1.088754], np.float32)
_EPS = 0.008856  # (6/29)**3: below it CIE's f(t) is linear
LAB_SCALE = np.array([100.0, 110.0, 110.0], np.float32)  # L, a, b divided by these


def fixed_permutation(n: int) -> np.ndarray:
    """The patch order used when the encoder is not training (any fixed order does)."""
    return np.random.default_rng(12345).permutation(n)


def shuffle_patches(x, grid: int, perms: np.ndarray):
    """Rearrange the grid x grid patches of each image: out patch j = in patch perms[b, j].

    x: (B, C, H, W) with H and W divisible by grid; perms: int (B, grid*grid), each row a
    permutation. Returns a Var of x's shape.
    """
    b, c, h, w = x.shape
    ph, pw = h // grid, w // grid
    p = x.reshape(b, c, grid, ph, grid, pw).transpose(0, 2, 4, 1, 3, 5)
    p = p.reshape(b * grid * grid, c, ph, pw)
    flat = (np.arange(b)[:, None] * grid * grid + np.asarray(perms)).reshape(-1)
    p = p[jt.array(flat.astype(np.int32))]
    p = p.reshape(b, grid, grid, c, ph, pw).transpose(0, 3, 1, 4, 2, 5)
    return p.reshape(b, c, h, w)


def style_encoder_input(x, grid: int, training: bool):
    """The encoder's view of the reference: patch-shuffled (random order per image while
    training, drawn from numpy's generator that the trainer seeds every step; a fixed order
    otherwise). grid <= 1 returns x unchanged."""
    if grid <= 1:
        return x
    n = grid * grid
    if training:
        perms = np.stack([np.random.permutation(n) for _ in range(x.shape[0])])
    else:
        perms = np.tile(fixed_permutation(n), (x.shape[0], 1))
    return shuffle_patches(x, grid, perms)


def rgb_to_lab(x):
    """(B, 3, H, W) RGB in [-1, 1] -> (B, 3, H, W) L*a*b* divided by LAB_SCALE (L in 0..1)."""
    c = ((x + 1.0) * 0.5).clamp(0.0, 1.0)
    lin = jt.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055).pow(2.4))
    m = _RGB_TO_XYZ / _WHITE[:, None]  # rows already divided by the white point
    # the 3x3 product as three weighted sums (Jittor's matmul would broadcast it to
    # (B, 3, 3, HW) and reduce; docs/benchmarks.md)
    r, g, b = lin[:, 0:1], lin[:, 1:2], lin[:, 2:3]
    xyz = jt.concat([float(m[i, 0]) * r + float(m[i, 1]) * g + float(m[i, 2]) * b
                     for i in range(3)], dim=1)
    # cube-root branch evaluated on clamped values: no infinite gradient at 0
    f = jt.where(xyz > _EPS, jt.maximum(xyz, _EPS).pow(1.0 / 3.0), xyz * 7.787 + 16.0 / 116.0)
    fx, fy, fz = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    lab = jt.concat([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)
    return lab / jt.array(LAB_SCALE.reshape(1, 3, 1, 1))


def colour_stats(lab):
    """Per-image, per-channel (mean, std) over the pixels: two (B, 3) Vars."""
    flat = lab.reshape(lab.shape[0], lab.shape[1], -1)
    mean = flat.mean(dim=2)
    var = ((flat - mean.unsqueeze(2)) ** 2).mean(dim=2)
    return mean, jt.sqrt(var + 1e-8)


def colour_stats_loss(fake_lab, ref_lab):
    """Mean |mean_f - mean_r| + |std_f - std_r| over images and LAB channels (ref detached)."""
    mf, sf = colour_stats(fake_lab)
    mr, sr = colour_stats(ref_lab.detach())
    return (mf - mr).abs().mean() + (sf - sr).abs().mean()


def class_colour_loss(fake_lab, real_lab, seg):
    """Mean over images and LAB channels of the area-weighted sum over classes of
    |class mean_f - class mean_r| + |class std_f - class std_r| (real detached).

    seg: (B, K, H, W) one-hot at the images' size (at most one class per pixel); classes
    absent from an image weigh 0.
    """
    b, k = seg.shape[0], seg.shape[1]
    m = seg.reshape(b, k, -1)  # (B, K, HW)
    area = m.sum(dim=2, keepdims=True)  # (B, K, 1)
    w = area / area.sum(dim=1, keepdims=True)  # class weights, sum 1 per image
    denom = area + 1e-6

    def moments(lab):
        x = lab.reshape(b, 3, -1)  # (B, 3, HW)
        mean = bmm(m, x.transpose(0, 2, 1)) / denom  # (B, K, 3)
        # each pixel's deviation from its own class's mean (one class per pixel), squared and
        # summed per class: the per-class variance without a (B, K, 3, HW) product
        dev = x - bmm(mean.transpose(0, 2, 1), m)  # (B, 3, HW)
        var = bmm(m, (dev * dev).transpose(0, 2, 1)) / denom
        return mean, jt.sqrt(var + 1e-8)

    mf, sf = moments(fake_lab)
    mr, sr = moments(real_lab.detach())
    per_class = (mf - mr).abs() + (sf - sr).abs()  # (B, K, 3)
    return (per_class * w).sum(dim=1).mean()


def colour_lowpass_loss(fake_lab, real_lab, factor: int):
    """L1 between factor x factor window averages of the two LAB images (real detached).

    The windows overlap by half (stride factor // 2): with disjoint blocks the generator is free
    to make steps at block borders, which showed as a blocky grid in the outputs."""
    stride = max(1, factor // 2)
    pool = lambda t: nn.pool(t, factor, "mean", stride=stride)  # noqa: E731
    return (pool(fake_lab) - pool(real_lab.detach())).abs().mean()


def colour_features(x, bins: int):
    """Layout-free colour description of images (B, 3, H, W) in [-1, 1], without gradient:
    (B, 6 + bins**3) = LAB mean and std per channel (LAB_SCALE units), then the square root of
    the normalised joint RGB histogram with `bins` levels per channel (none when bins is 0)."""
    x = x.detach()
    mean, std = colour_stats(rgb_to_lab(x))
    parts = [mean, std]
    if bins > 0:
        q = (((x + 1.0) * 0.5).clamp(0.0, 1.0 - 1e-6) * bins).floor().int32()
        idx = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]  # (B, H, W)
        idx = idx.reshape(x.shape[0], -1, 1)
        onehot = (idx == jt.arange(bins ** 3).int32().reshape(1, 1, -1)).float32()
        parts.append(jt.sqrt(onehot.mean(dim=1)))
    return jt.concat(parts, dim=1).stop_grad()


def soft_histogram(x, bins: int):
    """Soft joint RGB histogram (B, bins**3) of images (B, 3, H, W) in [-1, 1], each summing to 1.

    Each channel value spreads over its two nearest of `bins` evenly spaced centres (triangular
    kernel of one bin's width, the same as linear interpolation), so the histogram has gradients.
    """
    b = x.shape[0]
    v = ((x + 1.0) * 0.5).clamp(0.0, 1.0) * (bins - 1)  # position in bin units
    centres = jt.arange(bins).float32().reshape(1, 1, 1, bins)
    w = nn.relu(1.0 - (v.reshape(b, 3, -1, 1) - centres).abs())  # (B, 3, N, bins)
    rg = (w[:, 0].unsqueeze(3) * w[:, 1].unsqueeze(2)).reshape(b, -1, bins * bins)
    hist = jt.matmul(rg.transpose(0, 2, 1), w[:, 2])  # (B, bins*bins, bins)
    return hist.reshape(b, -1) / w.shape[2]


def colour_hist_loss(fake, real, bins: int):
    """Mean over images of 1 - Pearson correlation of the soft histograms (real detached)."""
    hf, hr = soft_histogram(fake, bins), soft_histogram(real.detach(), bins)
    hf = hf - hf.mean(dim=1, keepdims=True)
    hr = hr - hr.mean(dim=1, keepdims=True)
    corr = (hf * hr).sum(dim=1) / (jt.sqrt((hf * hf).sum(dim=1) * (hr * hr).sum(dim=1)) + 1e-12)
    return (1.0 - corr).mean()
