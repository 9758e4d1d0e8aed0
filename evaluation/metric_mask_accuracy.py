"""Mask-accuracy term (`mask-accuracy`): does a segmenter find the label map in the image?

A SegFormer (transformers, `from_pretrained` of a local folder or a hub id) segments each
generated image; its logits are upsampled (bilinear) to the ground-truth map's size, argmax'd,
and mapped onto the 29 classes; per-image accuracy = (gt == pred).sum() / (H * W); the term is
the mean over images. Preprocessing is the checkpoint's own `SegformerImageProcessor`
(`preprocessor_config.json`; resize, rescale 1/255, ImageNet mean/std), recorded in scores.json.

Checkpoints with other classes (e.g. ADE20K's 150) are accepted with `evaluate.segformer_class_map`:
`ade20k-names` matches the checkpoint's label names, or a json file {source class id: 0..28};
source classes left unmapped count as "other".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import SegformerForSemanticSegmentation, SegformerImageProcessor

from pipeline.core.artifacts import sha256_file
from pipeline.core.classes import CLASS_ID, NUM_CLASSES
from pipeline.core.errors import ArtifactError, ConfigError

from .loading import pretrained_source, weights_file
from .registry import Batch, Metric, MetricResult, register_metric

HOW_TO_GET = (
    "fit one on the training labels with `landscape fit-segformer --data artifacts/data/<id>"
    " --out weights/segformer` (or `make fit-segformer`), or place a SegFormer save_pretrained folder"
    " (config.json + model.safetensors + preprocessor_config.json) there, or point"
    " evaluate.segformer at one (an ADE20K checkpoint needs evaluate.segformer_class_map=ade20k-names)"
)

# ADE20K label names that are the same scene element as one of the 29 classes under another name.
ADE20K_SYNONYMS = {
    "skyscraper": "building", "tower": "building", "hovel": "house", "palm": "tree",
    "flower": "plant", "dirt track": "path", "sidewalk": "path", "swimming pool": "water",
    "fountain": "water", "bannister": "railing", "canopy": "tree",
}


def load_segformer(source: str, device: Any):
    """Load (model, processor, info) from a local save_pretrained folder or a hub id.

    info: {"model": source, "model_sha256": sha256 of the weights file ("" for a hub id),
    "preprocessing": the processor's settings}. ArtifactError saying how to get one when missing.
    """
    path = Path(source)
    kind = pretrained_source(source)
    local = kind == "local"
    if kind is None:
        raise ArtifactError(
            f"mask-accuracy: no SegFormer at {source} (not a local folder, nor a hub id in the local"
            f" hub cache). To get one: {HOW_TO_GET}"
        )
    if local and not (path / "config.json").is_file():
        raise ArtifactError(
            f"mask-accuracy: {source} has no config.json, so it is not a SegFormer save_pretrained"
            f" folder. To get one: {HOW_TO_GET}"
        )
    try:
        model = SegformerForSemanticSegmentation.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as exc:
        where = "folder" if local else "cached hub id"
        raise ArtifactError(
            f"mask-accuracy: cannot load a SegFormer from {where} {source} ({str(exc).splitlines()[0]})."
            f" To get one: {HOW_TO_GET}"
        ) from None
    try:
        processor = SegformerImageProcessor.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError):
        processor = SegformerImageProcessor()  # checkpoint without preprocessor_config.json
    model.to(device).eval()
    weights = weights_file(path) if local else None
    info = {
        "model": str(path.resolve()) if local else source,
        "model_sha256": sha256_file(weights) if weights else "",
        "preprocessing": {
            "processor": "SegformerImageProcessor",
            "size": dict(processor.size),
            "resample": int(processor.resample),
            "rescale_factor": float(processor.rescale_factor),
            "image_mean": list(processor.image_mean),
            "image_std": list(processor.image_std),
            "logits": "bilinear upsampling to the label map's size, argmax",
        },
    }
    return model, processor, info


def class_lookup(class_map: str, id2label: dict[int, str], num_labels: int) -> tuple[np.ndarray, str]:
    """Lookup table source class id -> 0..28 and a description; ConfigError when impossible."""
    if class_map == "":
        if num_labels != NUM_CLASSES:
            raise ConfigError(
                f"evaluate.segformer: the checkpoint has {num_labels} classes, not the {NUM_CLASSES}"
                " of the label maps; set evaluate.segformer_class_map to 'ade20k-names' (ADE20K"
                " checkpoints) or to a json file {source class id: 0..28}"
            )
        return np.arange(NUM_CLASSES, dtype=np.int64), "identity (29 classes)"
    lut = np.full(num_labels, CLASS_ID["other"], dtype=np.int64)
    if class_map == "ade20k-names":
        matched = 0
        for i in range(num_labels):
            name = str(id2label.get(i, "")).split(",")[0].strip().lower()
            name = ADE20K_SYNONYMS.get(name, name)
            if name in CLASS_ID:
                lut[i] = CLASS_ID[name]
                matched += 1
        if matched == 0:
            raise ConfigError(
                "evaluate.segformer_class_map='ade20k-names': none of the checkpoint's label names"
                " matches one of the 29 classes; give a json file {source class id: 0..28} instead"
            )
        return lut, f"ade20k-names: {matched} of {num_labels} source classes matched by name, rest -> other"
    path = Path(class_map)
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"evaluate.segformer_class_map: cannot read {path} as json ({exc})") from None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: expected a json object {{source class id: 0..28}}")
    for key, value in table.items():
        try:
            src = int(key)
        except ValueError:
            raise ConfigError(f"{path}: key {key!r} is not a class id") from None
        if not 0 <= src < num_labels:
            raise ConfigError(f"{path}: source class {src} outside the checkpoint's 0..{num_labels - 1}")
        if isinstance(value, str) and value in CLASS_ID:
            value = CLASS_ID[value]
        if not isinstance(value, int) or not 0 <= value < NUM_CLASSES:
            raise ConfigError(f"{path}: class {key} maps to {value!r}; use 0..28 or a class name")
        lut[src] = value
    return lut, f"json {path.resolve()} ({len(table)} of {num_labels} source classes mapped, rest -> other)"


def pixel_accuracy(gt: np.ndarray, pred: np.ndarray) -> float:
    """(gt == pred).sum() / (H * W) of two HxW label maps."""
    if gt.shape != pred.shape:
        raise ValueError(f"shapes differ: {gt.shape} vs {pred.shape}")
    return float((gt == pred).sum()) / float(gt.size)


@register_metric("mask-accuracy")
class MaskAccuracy(Metric):
    term = "mask_accuracy"
    needs = frozenset({"maps"})

    def __init__(self, cfg, ctx) -> None:
        super().__init__(cfg, ctx)
        self.model, self.processor, self.info = load_segformer(cfg.evaluate.segformer, ctx.device)
        conf = self.model.config
        lut, self.class_map_note = class_lookup(
            cfg.evaluate.segformer_class_map, dict(conf.id2label or {}), int(conf.num_labels)
        )
        self.lut = torch.from_numpy(lut).to(ctx.device)
        self.values: dict[str, float] = {}

    def predict(self, images: list[np.ndarray], sizes: list[tuple[int, int]]) -> list[np.ndarray]:
        """Predicted 0..28 label maps of RGB images, each at its (H, W) in `sizes`."""
        pixel_values = self.processor(images=images, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            logits = self.model(pixel_values=pixel_values.to(self.ctx.device)).logits
            preds = []
            for i, size in enumerate(sizes):
                up = torch.nn.functional.interpolate(
                    logits[i : i + 1], size=size, mode="bilinear", align_corners=False
                )
                preds.append(self.lut[up.argmax(dim=1)[0]].cpu().numpy())
        return preds

    def update(self, batch: Batch) -> None:
        preds = self.predict(batch.generated, [m.shape[:2] for m in batch.maps])
        for stem, gt, pred in zip(batch.stems, batch.maps, preds):
            self.values[stem] = pixel_accuracy(gt, pred)

    def result(self) -> MetricResult:
        return MetricResult(float(np.mean(list(self.values.values()))), dict(self.values))

    def describe(self) -> dict[str, Any]:
        return {
            **self.info,
            "variant": f"class map: {self.class_map_note}",
            "stand_in": False,
            "note": "",
        }
