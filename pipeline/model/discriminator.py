"""Multi-scale PatchGAN discriminator with spectral normalisation and feature outputs."""

from __future__ import annotations

import jittor as jt
from jittor import nn

from .normalization import InstanceNormAct, SNConv2d


class PatchDiscriminator(nn.Module):
    """(label one-hot ++ image) -> list of intermediate features, the last one the patch logits.

    `layers` convs of width ndf * 2**i (capped at 8x): stride 2 except the last two, 4x4 kernels,
    instance norm after the first, then a 1-channel conv (pix2pixHD / SPADE layout).
    """

    def __init__(self, in_nc: int, ndf: int, layers: int, spectral: bool):
        self.stages = nn.ModuleList()
        self.stages.append(nn.Sequential(
            SNConv2d(in_nc, ndf, 4, stride=2, padding=2, spectral=spectral), nn.LeakyReLU(0.2)))
        nf = ndf
        for i in range(1, layers):
            nf_prev, nf = nf, min(nf * 2, ndf * 8)
            stride = 1 if i == layers - 1 else 2
            self.stages.append(nn.Sequential(
                SNConv2d(nf_prev, nf, 4, stride=stride, padding=2, bias=False, spectral=spectral),
                InstanceNormAct(0.2)))
        self.stages.append(SNConv2d(nf, 1, 4, stride=1, padding=2, spectral=spectral))

    def execute(self, x):
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class MultiscaleDiscriminator(nn.Module):
    """`scales` PatchGANs, each on the input average-pooled once more than the previous one.

    Returns one feature list per scale (see PatchDiscriminator). edge_in_nc > 0 adds `self.edge`,
    a second multi-scale discriminator of that many input channels (ECGAN's edge discriminator,
    on label one-hot ++ edge map, loss.edge_gan); it lives inside this module so that it shares
    the discriminator's checkpoint prefix and optimiser. Without it `self.edge` is None.
    """

    def __init__(self, in_nc: int, ndf: int, layers: int, scales: int, spectral: bool,
                 edge_in_nc: int = 0):
        self.nets = nn.ModuleList(
            [PatchDiscriminator(in_nc, ndf, layers, spectral) for _ in range(scales)])
        self.edge = (MultiscaleDiscriminator(edge_in_nc, ndf, layers, scales, spectral)
                     if edge_in_nc > 0 else None)

    def execute(self, x, cond: list | None = None):
        """x (N, C, H, W) -> one feature list per scale.

        cond: None, or the pyramid (`pyramid(c, scales)`) of a conditioning input c (B, K, H, W)
        whose channels go before x's, B dividing N (c repeated along the batch): each scale
        then sees what it would see on concat(c repeated, x), since the pool is per channel,
        with c pooled once for all N / B images instead of once per image (the label one-hot
        is 29 of the 32 channels the discriminator pools)."""
        out = []
        for i, net in enumerate(self.nets):
            if i > 0:
                x = downsample(x)
            if cond is None:
                out.append(net(x))
            else:
                c = cond[i]
                out.append(net(jt.concat([jt.concat([c] * (x.shape[0] // c.shape[0]), dim=0), x],
                                         dim=1)))
        return out


def pyramid(x, scales: int) -> list:
    """[x, downsample(x), downsample(downsample(x)), ...]: the input of each of `scales` scales."""
    out = [x]
    for _ in range(1, scales):
        out.append(downsample(out[-1]))
    return out


def downsample(x):
    """3x3 average pool, stride 2, padding 1, averaging only the pixels inside the image.

    Jittor 1.3.11's avg_pool2d ignores count_include_pad=False (it divides by 9 at the borders),
    so the sum is divided by the pooled count of ones instead.
    """
    ones = jt.ones((1, 1) + tuple(x.shape[2:]))
    return nn.avg_pool2d(x, 3, stride=2, padding=1) / nn.avg_pool2d(ones, 3, stride=2, padding=1)
