"""Sample grids of a training run: map | reference | generated | edges, one row per sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..colour import colourise_labels
from ..core.artifacts import atomic_write_bytes
from .data import batch_to_vars


def sample_grid(model, jt, batch: dict, num_classes: int, output: str) -> np.ndarray:
    """RGB uint8 grid: one row per sample, columns map | reference | generated | edges."""
    from ..model.ganmodel import tensor_to_images

    inputs = batch_to_vars(jt, batch, num_classes)
    out = model.generate(inputs["seg"], inputs["image"], ref_seg=inputs["seg"])
    key = "refined" if output == "refined" and "refined" in out else "image"
    fake = tensor_to_images(out[key].numpy())
    if "edge" in out:
        edges = (np.clip(out["edge"].numpy()[:, 0], 0, 1) * 255).astype(np.uint8)
    else:
        edges = batch["edges"]
    rows = []
    for i in range(len(fake)):
        edge_rgb = np.repeat(edges[i][..., None], 3, axis=2)
        rows.append(np.concatenate([colourise_labels(batch["labels"][i]), batch["images"][i],
                                    fake[i], edge_rgb], axis=1))
    return np.concatenate(rows, axis=0)


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG, atomically."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OSError(f"could not encode {path}")
    atomic_write_bytes(path, buf.tobytes())
