"""Loss terms: hinge GAN, feature matching, KLD, edge BCE and the optional VGG19 perceptual loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import jittor as jt
from jittor import nn

from ..core.errors import ConfigError

# torchvision's vgg19().features layout: conv indices and widths up to relu5_1 (index 29).
VGG19_CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256),
               (12, 256, 256), (14, 256, 256), (16, 256, 256), (19, 256, 512), (21, 512, 512),
               (23, 512, 512), (25, 512, 512), (28, 512, 512)]
VGG19_POOLS_BEFORE = {5, 10, 19, 28}  # a 2x2 max pool precedes these convs
VGG19_TAPS = {0: 0, 5: 1, 10: 2, 19: 3, 28: 4}  # relu1_1 .. relu5_1 after these convs
VGG_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)  # as in pix2pixHD / SPADE


def hinge_d_loss(real_logits, fake_logits):
    """Discriminator hinge loss parts: (mean relu(1 - real), mean relu(1 + fake))."""
    return nn.relu(1.0 - real_logits).mean(), nn.relu(1.0 + fake_logits).mean()


def hinge_g_loss(fake_logits):
    """Generator hinge loss: -mean(fake logits)."""
    return -fake_logits.mean()


def multiscale(fn, outputs):
    """Average `fn(last feature)` over the scales of a multi-scale discriminator output."""
    return sum(fn(feats[-1]) for feats in outputs) / len(outputs)


def feature_matching_loss(fake_outputs, real_outputs):
    """L1 between fake and (fixed) real intermediate D features, averaged over scales."""
    total = 0.0
    for fake_feats, real_feats in zip(fake_outputs, real_outputs):
        for f, r in zip(fake_feats[:-1], real_feats[:-1]):
            total = total + (f - r.detach()).abs().mean()
    return total / len(fake_outputs)


def kld_loss(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, 1)), summed over the code and averaged over the batch."""
    return -0.5 * (1 + logvar - mu * mu - jt.exp(logvar)).sum() / mu.shape[0]


def edge_loss(pred, target):
    """Binary cross-entropy of the predicted edge map (0..1) against the Canny map (0..1)."""
    p = pred.clamp(1e-6, 1 - 1e-6)
    return -(target * jt.log(p) + (1 - target) * jt.log(1 - p)).mean()


class VGG19Features(nn.Module):
    """VGG19 conv layers up to relu5_1; returns the five relu*_1 activations."""

    def __init__(self):
        self.convs = nn.ModuleList([nn.Conv2d(cin, cout, 3, padding=1)
                                    for _, cin, cout in VGG19_CONVS])
        self.mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
        self.std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)

    def execute(self, x):
        # x in [-1, 1] -> ImageNet-normalised [0, 1]
        x = ((x + 1) / 2 - jt.array(self.mean)) / jt.array(self.std)
        taps = []
        for (index, _, _), conv in zip(VGG19_CONVS, self.convs):
            if index in VGG19_POOLS_BEFORE:
                x = nn.pool(x, 2, "maximum", stride=2)
            x = nn.relu(conv(x))
            if index in VGG19_TAPS:
                taps.append(x)
        return taps


def load_vgg19(path: str | Path) -> VGG19Features:
    """VGG19Features with weights from an .npz or .safetensors file of torchvision names.

    The file must hold `features.<i>.weight` / `features.<i>.bias` for every conv up to index 28
    (other keys, e.g. the classifier, are ignored). Raises ConfigError naming what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"loss.vgg_weights: {path} not found; give a VGG19 weights file or ''")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    elif path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        arrays = load_file(str(path))
    else:
        raise ConfigError(f"loss.vgg_weights: {path} must be a .npz or .safetensors file")
    net = VGG19Features()
    for (index, cin, cout), conv in zip(VGG19_CONVS, net.convs):
        for name, shape in (("weight", (cout, cin, 3, 3)), ("bias", (cout,))):
            key = f"features.{index}.{name}"
            if key not in arrays:
                raise ConfigError(f"loss.vgg_weights: {path} has no '{key}' (torchvision VGG19 names)")
            if tuple(arrays[key].shape) != shape:
                raise ConfigError(
                    f"loss.vgg_weights: {path} '{key}' has shape {tuple(arrays[key].shape)},"
                    f" expected {shape} (is it VGG19?)")
            getattr(conv, name).update(jt.array(arrays[key].astype(np.float32)))
    net.eval()
    for p in net.parameters():
        p.stop_grad()
    return net


class VGGLoss(nn.Module):
    """Perceptual loss: weighted L1 between VGG19 relu*_1 activations of fake and real."""

    def __init__(self, vgg: VGG19Features):
        self.vgg = vgg

    def execute(self, fake, real):
        fake_taps, real_taps = self.vgg(fake), self.vgg(real)
        return sum(w * (f - r.detach()).abs().mean()
                   for w, f, r in zip(VGG_LAYER_WEIGHTS, fake_taps, real_taps))
