"""ECGAN's pixel-wise contrastive loss, at several generator scales.

At each chosen generator scale, `pixels` positions per image are drawn (numpy's generator, which
the trainer seeds every step); their feature vectors (L2-normalised) from all images of the batch
form one set. Each sampled pixel is an anchor: the pixels of the same class (from any image of
the batch, i.e. across layouts) are its positives, all others its negatives (the supervised
contrastive loss of Khosla et al. 2020):

    L = mean over anchors i with a positive of
        -1/|P(i)| * sum_{p in P(i)} log( exp(f_i.f_p / t) / sum_{a != i} exp(f_i.f_a / t) )

averaged over the scales.
"""

from __future__ import annotations

import numpy as np
import jittor as jt


def supervised_contrastive(feats, labels: np.ndarray, temperature: float):
    """The loss above for features (M, C) (a Var, normalised here) and int labels (M,) (numpy).

    Returns a scalar Var; 0 when no anchor has a positive.
    """
    labels = np.asarray(labels)
    m = labels.shape[0]
    same = (labels[:, None] == labels[None, :]) & ~np.eye(m, dtype=bool)
    has_pos = same.any(axis=1)
    if not has_pos.any():
        return jt.zeros((1,))
    f = feats / (jt.sqrt((feats * feats).sum(dim=1, keepdims=True)) + 1e-8)
    logits = jt.matmul(f, f.transpose(1, 0)) / temperature
    logits = logits - logits.max(dim=1, keepdims=True).detach()  # stable log-sum-exp
    not_self = jt.array((~np.eye(m, dtype=bool)).astype(np.float32))
    log_denominator = jt.log((jt.exp(logits) * not_self).sum(dim=1, keepdims=True))
    log_prob = logits - log_denominator
    pos = same.astype(np.float32)
    per_anchor = (log_prob * jt.array(pos)).sum(dim=1) / jt.array(np.maximum(pos.sum(1), 1))
    weight = has_pos.astype(np.float32) / has_pos.sum()
    return -(per_anchor * jt.array(weight)).sum()


def sample_pixels(feat, labels: np.ndarray, pixels: int):
    """Draw `pixels` positions per image: (features (B*pixels, C) Var, labels (B*pixels,)).

    feat: (B, C, h, w) Var; labels: (B, h, w) int numpy at the same size.
    """
    b, c, h, w = feat.shape
    pos = np.stack([np.random.choice(h * w, size=min(pixels, h * w), replace=False)
                    for _ in range(b)])
    flat_idx = (np.arange(b)[:, None] * (h * w) + pos).reshape(-1).astype(np.int32)
    rows = feat.transpose(0, 2, 3, 1).reshape(b * h * w, c)[jt.array(flat_idx)]
    return rows, labels.reshape(-1)[flat_idx]


def multiscale_contrastive(features: list, label_map: np.ndarray, pixels: int,
                           temperature: float):
    """Mean over `features` (generator maps, each (B, C, h, w)) of the contrastive loss, labels
    taken from `label_map` (B, H, W) ints resized (nearest, by striding) to each scale."""
    total = 0.0
    for feat in features:
        h, w = feat.shape[2], feat.shape[3]
        sy, sx = label_map.shape[1] // h, label_map.shape[2] // w
        small = label_map[:, sy // 2::sy, sx // 2::sx][:, :h, :w]
        rows, labs = sample_pixels(feat, small, pixels)
        total = total + supervised_contrastive(rows, labs, temperature)
    return total / max(1, len(features))


def onehot_to_labels(seg) -> np.ndarray:
    """(B, K, H, W) one-hot Var -> (B, H, W) int numpy class ids."""
    return np.argmax(seg.numpy(), axis=1)

