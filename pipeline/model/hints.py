"""Class colour hints: the reference photo's mean colour per class, painted onto a label map.

    hints = class_hints(image, seg, min_pixels)      # (B, K, 4): mean RGB in [-1, 1] + presence
    hint_map = paint_hints(hints, seg)                # (B, 4, H, W): each pixel its class's hint

The generator's SPADE blocks see the hint map beside the one-hot labels, so the reference's own
colours of sky, water, trees... reach the classes of the map being drawn (the layouts differ).
At training time the reference is the photo itself, with classes hidden at random so the model
also learns to draw the classes a reference lacks from the style code.
"""

from __future__ import annotations

import jittor as jt


def class_hints(image, seg, min_pixels: int):
    """(B, K, 4) hints of images (B, 3, H, W) in [-1, 1] under one-hot maps seg (B, K, H', W'):
    mean colour of each class's pixels and presence (1 where the class covers >= min_pixels)."""
    b, k = seg.shape[0], seg.shape[1]
    if seg.shape[2:] != image.shape[2:]:
        image = jt.nn.interpolate(image, size=seg.shape[2:], mode="bilinear")
    segf = seg.reshape(b, k, -1)
    area = segf.sum(dim=2, keepdims=True)  # (b, k, 1)
    sums = jt.matmul(segf, image.reshape(b, 3, -1).transpose(0, 2, 1))  # (b, k, 3)
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
    return jt.matmul(hints.transpose(0, 2, 1), seg.reshape(b, k, h * w)).reshape(b, 4, h, w)


def hint_logits(hint_map):
    """Pre-tanh values of the hint colours where a hint is present, 0 elsewhere: added before the
    generator's final tanh, so an untrained generator already paints each class its hint colour."""
    rgb, present = hint_map[:, :3], hint_map[:, 3:4]
    rgb = jt.clamp(rgb, -0.95, 0.95)
    return 0.5 * jt.log((1 + rgb) / (1 - rgb)) * present


def no_hints(seg):
    """All-absent hints for a batch of maps (a reference without a label map)."""
    return jt.zeros((seg.shape[0], seg.shape[1], 4))
