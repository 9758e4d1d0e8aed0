"""VAE style encoder: reference photo -> (mu, logvar) of the style code."""

from __future__ import annotations

import math

import jittor as jt
from jittor import nn

from .normalization import conv2d
from .style import colour_features, style_encoder_input


class StyleEncoder(nn.Module):
    """Conv encoder (SPADE's ConvEncoder shape) on the reference resized to a square.

    Input: images (B, 3, H, W) in [-1, 1]. Output: mu, logvar, each (B, z_dim).
    Stride-2 3x3 convs halve the square `size` down to 4x4, then two linear heads.
    spectral: spectral norm on the convs (SPADE's "spectralinstance", model.spectral_norm_g);
    shuffle > 1: the resized photo's shuffle x shuffle patches are reordered first
    (model.style_shuffle, see style.style_encoder_input); hist_bins not None
    (model.style_stats): the heads also read the reference's LAB mean/std and a joint RGB
    histogram of hist_bins**3 bins (style.colour_features).
    """

    def __init__(self, nef: int, z_dim: int, size: int, spectral: bool = False, shuffle: int = 0,
                 hist_bins: int | None = None):
        if size < 8 or 2 ** round(math.log2(size)) != size:
            raise ValueError(f"model.encoder_size {size}: use a power of two >= 8")
        self.size = size
        self.shuffle = shuffle
        n = int(math.log2(size)) - 2
        widths = [nef * min(8, 2**i) for i in range(n)]
        layers = []
        cin = 3
        for w in widths:
            layers += [conv2d(cin, w, 3, stride=2, padding=1, spectral=spectral),
                       nn.InstanceNorm2d(w, affine=True), nn.LeakyReLU(0.2)]
            cin = w
        self.convs = nn.Sequential(*layers)
        self.hist_bins = hist_bins
        extra = 0 if hist_bins is None else 6 + hist_bins ** 3
        self.fc_mu = nn.Linear(cin * 16 + extra, z_dim)
        self.fc_var = nn.Linear(cin * 16 + extra, z_dim)

    def execute(self, x):
        if x.shape[2] != self.size or x.shape[3] != self.size:
            x = nn.interpolate(x, size=(self.size, self.size), mode="bilinear")
        h = self.convs(style_encoder_input(x, self.shuffle, self.is_training()))
        h = h.reshape(x.shape[0], -1)
        if self.hist_bins is not None:
            h = jt.concat([h, colour_features(x, self.hist_bins)], dim=1)
        return self.fc_mu(h), self.fc_var(h)


def reparameterize(mu, logvar):
    """Sample z = mu + eps * std with eps ~ N(0, 1) from Jittor's (seeded) generator."""
    std = jt.exp(0.5 * logvar)
    return mu + jt.randn(mu.shape) * std
