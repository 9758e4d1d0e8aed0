"""Class colour hints: the reference photo's mean colour per class, painted onto a label map.

    hints = class_hints(image, seg, min_pixels)      # (B, K, 4): mean RGB in [-1, 1] + presence
    hint_map = paint_hints(hints, seg)                # (B, 4, H, W): each pixel its class's hint

The generator's SPADE blocks see the hint map beside the one-hot labels, so the reference's own
colours of sky, water, trees... reach the classes of the map being drawn (the layouts differ).
At training time the reference is the photo itself, with classes hidden at random so the model
also learns to draw the classes a reference lacks from the style code.
"""

from __future__ import annotations

import numpy as np
import jittor as jt

from .ops import bmm


def class_hints(image, seg, min_pixels: int):
    """(B, K, 4) hints of images (B, 3, H, W) in [-1, 1] under one-hot maps seg (B, K, H', W'):
    mean colour of each class's pixels and presence (1 where the class covers >= min_pixels)."""
    b, k = seg.shape[0], seg.shape[1]
    if seg.shape[2:] != image.shape[2:]:
        image = jt.nn.interpolate(image, size=seg.shape[2:], mode="bilinear")
    segf = seg.reshape(b, k, -1)
    area = segf.sum(dim=2, keepdims=True)  # (b, k, 1)
    sums = bmm(segf, image.reshape(b, 3, -1).transpose(0, 2, 1))  # (b, k, 3)
    present = (area >= min_pixels).float32()
    mean = sums / jt.maximum(area, 1.0) * present
    return jt.concat([mean, present], dim=2).stop_grad()


def drop_hints(hints, rate: float):
    """Hide each class's hint with probability `rate` (training), from Jittor's seeded RNG."""
    if rate <= 0:
        return hints
    keep = (jt.rand(hints.shape[0], hints.shape[1], 1) >= rate).float32()
    return hints * keep


def paint_hints(hints, seg):
    """(B, 4, H, W): every pixel of seg (B, K, H, W) takes its class's hint (B, K, 4)."""
    b, k, h, w = seg.shape
    return bmm(hints.transpose(0, 2, 1), seg.reshape(b, k, h * w)).reshape(b, 4, h, w)


def hint_logits(hint_map):
    """Pre-tanh values of the hint colours where a hint is present, 0 elsewhere: added before the
    generator's final tanh, so an untrained generator already paints each class its hint colour."""
    rgb, present = hint_map[:, :3], hint_map[:, 3:4]
    rgb = jt.clamp(rgb, -0.95, 0.95)
    return 0.5 * jt.log((1 + rgb) / (1 - rgb)) * present


def no_hints(seg):
    """All-absent hints for a batch of maps (a reference without a label map)."""
    return jt.zeros((seg.shape[0], seg.shape[1], 4))


def _uniform(b: int, n: int, training: bool, salt: int):
    """(b, n) uniform [0, 1) draws: Jittor's seeded generator while training, a fixed array
    otherwise (generation is deterministic and independent of the batch's position)."""
    if training:
        return jt.rand((b, n))
    fixed = np.random.default_rng([n, salt]).random((1, n)).astype(np.float32)
    return jt.array(np.repeat(fixed, b, axis=0))


def class_texture(ref, ref_seg, seg, hint_map, training: bool, absent: bool = False):
    """(B, 3, H, W) texture residuals: every pixel of seg takes the colour of a random pixel of
    the same class in the reference ref (B, 3, H', W') under its own map ref_seg (one-hot), minus
    that class's hint colour; 0 where the pixel's class has no hint (hint_map's presence channel:
    absent, too small or dropped).

    The hint map gives each class its reference mean colour; this adds the reference's spread
    around that mean (model.hint_texture): the output's colour histogram per class is then the
    reference's. Sampling: the reference pixels are sorted by class, in a random order
    within each class (sort key: class + a uniform draw / 2); a pixel of class c takes entry
    offset_c + floor(u * count_c) of that order.

    Returns (hinted, absent_spread): absent_spread is None unless `absent`; then it holds, where
    the pixel's class has no hint (model.hint_texture_absent), a random pixel of the whole
    reference minus the reference's mean colour, and 0 where it has one. A class drawn flat puts
    its whole area into one histogram bin, which the style term punishes most.
    """
    b, k, h, w = seg.shape
    if ref.shape[2:] != ref_seg.shape[2:]:
        ref = jt.nn.interpolate(ref, size=ref_seg.shape[2:], mode="bilinear")
    n_ref = ref_seg.shape[2] * ref_seg.shape[3]
    ref_cls = jt.argmax(ref_seg.reshape(b, k, n_ref), dim=1)[0].float32()  # (B, n_ref)
    order, _ = jt.argsort(ref_cls + 0.5 * _uniform(b, n_ref, training, 1), dim=1)
    counts = ref_seg.reshape(b, k, n_ref).sum(dim=2)  # (B, K)
    offsets = jt.cumsum(counts, dim=1) - counts
    cls = jt.argmax(seg.reshape(b, k, h * w), dim=1)[0]  # (B, HW)
    cnt, off = counts.gather(1, cls), offsets.gather(1, cls)
    u = _uniform(b, h * w, training, 2)
    pos = off + jt.minimum((u * cnt).floor(), jt.maximum(cnt - 1, 0))
    pos = jt.minimum(pos, n_ref - 1).int32()  # a class the reference lacks (no hint) stays in range
    src = order.gather(1, pos)  # (B, HW): flat index of the sampled reference pixel
    colours = ref.reshape(b, 3, n_ref).gather(2, src.unsqueeze(1).repeat(1, 3, 1))
    present = hint_map[:, 3:4]
    hinted = ((colours.reshape(b, 3, h, w) - hint_map[:, :3]) * present).stop_grad()
    if not absent:
        return hinted, None
    flat = ref.reshape(b, 3, n_ref)
    anywhere = jt.minimum((_uniform(b, h * w, training, 3) * n_ref).floor(), n_ref - 1).int32()
    spread = flat.gather(2, anywhere.unsqueeze(1).repeat(1, 3, 1)) - flat.mean(dim=2, keepdims=True)
    return hinted, (spread.reshape(b, 3, h, w) * (1 - present)).stop_grad()
