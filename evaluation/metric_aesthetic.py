"""Aesthetic term (`aesthetic`): the LAION aesthetic predictor, or a labelled stand-in.

Real model: CLIP ViT-L/14 image embedding (transformers `CLIPVisionModelWithProjection`, its
own `CLIPImageProcessor`: shortest side 224 bicubic, centre crop 224, CLIP mean/std),
L2-normalised, through the LAION "sac+logos+ava1-l14-linearMSE" head
Linear(768,1024)-Dropout-Linear(1024,128)-Dropout-Linear(128,64)-Dropout-Linear(64,16)-Linear(16,1)
(keys `layers.{0,2,4,6,7}.{weight,bias}`; loaded from .safetensors, or from the published .pth
with `torch.load(weights_only=True)` only). Per image: score / 10 clipped to [0, 1].

Stand-in (when the CLIP folder or the head file is missing and `evaluate.allow_standin`): a
deterministic no-reference measure of the image itself, resized to 512x384 (INTER_AREA):
  colourfulness C = M / (M + 60), M = Hasler-Suesstrunk colourfulness (std and mean of
                    rg = R - G and yb = (R + G) / 2 - B);
  contrast      K = min(1, 2 * std(grey) / 255)   (RMS contrast);
  sharpness     S = V / (V + 300), V = variance of the grey image's Laplacian;
  stand-in      = (C + K + S) / 3, in [0, 1].
It is NOT the LAION score; every output says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

from pipeline.core.artifacts import sha256_file
from pipeline.core.errors import ArtifactError

from .loading import pretrained_source, weights_file
from .registry import Batch, Metric, MetricResult, register_metric

HEAD_KEYS = tuple(f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias"))
CLIP_HUB_ID = "openai/clip-vit-large-patch14"
HEAD_URL = (
    "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/"
    "sac+logos+ava1-l14-linearMSE.pth"
)
HOW_TO_GET = (
    "run `landscape weights` on a machine that is online, or place CLIP ViT-L/14 "
    f"(hub id {CLIP_HUB_ID}: config.json, preprocessor_config.json, model.safetensors) in the folder"
    " evaluate.clip (default weights/clip-vit-large-patch14) and the LAION head"
    f" ({HEAD_URL}) at evaluate.aesthetic_head (default weights/aesthetic-head.safetensors;"
    " `landscape weights` converts a .pth placed in weights/ into it, or point the key at the .pth)"
)
STANDIN_NOTE = (
    "STAND-IN: the aesthetic term is NOT the LAION aesthetic predictor but a no-reference"
    " colourfulness/contrast/sharpness measure (0..1), because {missing}. Scores computed with it"
    " are not comparable to the A board. To use the real model: " + HOW_TO_GET + "."
)


# ---------------------------------------------------------------------------- the LAION head
def build_head(state: dict) -> nn.Module:
    """The LAION MLP with widths read from a state dict's shapes; ArtifactError on a bad dict."""
    keys = set(state)
    if keys != set(HEAD_KEYS):
        raise ArtifactError(
            f"aesthetic head: expected keys {', '.join(HEAD_KEYS)}; missing"
            f" {sorted(set(HEAD_KEYS) - keys)}, unexpected {sorted(keys - set(HEAD_KEYS))[:5]}"
        )
    shapes = [tuple(state[f"layers.{i}.weight"].shape) for i in (0, 2, 4, 6, 7)]
    widths = [shapes[0][1]] + [s[0] for s in shapes]
    for i, (out_f, in_f) in enumerate(shapes):
        if (out_f, in_f) != (widths[i + 1], widths[i]) or len(state[HEAD_KEYS[2 * i + 1]]) != out_f:
            raise ArtifactError(f"aesthetic head: layer shapes {shapes} do not chain")
    if widths[-1] != 1:
        raise ArtifactError(f"aesthetic head: the last layer must output 1 value, not {widths[-1]}")
    d, h1, h2, h3, h4, _ = widths
    head = nn.Sequential(
        nn.Linear(d, h1), nn.Dropout(0.2), nn.Linear(h1, h2), nn.Dropout(0.2),
        nn.Linear(h2, h3), nn.Dropout(0.1), nn.Linear(h3, h4), nn.Linear(h4, 1),
    )
    class AestheticHead(nn.Module):
        def __init__(self, layers):
            super().__init__()
            self.layers = layers  # attribute name matches the LAION state dict's "layers." keys

        def forward(self, x):
            return self.layers(x)

    wrapper = AestheticHead(head)
    wrapper.load_state_dict({k: torch.as_tensor(v).float() for k, v in state.items()}, strict=True)
    return wrapper.eval()


def read_head_state(path: str | Path) -> dict:
    """Tensors of a head file: .safetensors, or .pth/.pt through torch.load(weights_only=True)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(str(path))
    if path.suffix in (".pth", ".pt"):
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any refusal of the restricted unpickler
            raise ArtifactError(f"{path}: not a plain tensor state dict ({exc})") from None
        if not isinstance(state, dict):
            raise ArtifactError(f"{path}: expected a state dict, got {type(state).__name__}")
        return state
    raise ArtifactError(f"{path}: aesthetic head must be .safetensors or .pth")


# ---------------------------------------------------------------------------- the stand-in
def standin_score(image: np.ndarray) -> float:
    """The documented no-reference stand-in of an HxWx3 uint8 RGB image, in [0, 1]."""
    img = cv2.resize(image, (512, 384), interpolation=cv2.INTER_AREA).astype(np.float64)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    m = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    colourfulness = m / (m + 60.0)
    grey = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2GRAY)
    contrast = min(1.0, 2.0 * float(grey.std()) / 255.0)
    v = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    sharpness = v / (v + 300.0)
    return float((colourfulness + contrast + sharpness) / 3.0)


def _missing_parts(cfg) -> list[str]:
    missing = []
    clip, head = cfg.evaluate.clip, Path(cfg.evaluate.aesthetic_head)
    if pretrained_source(clip) is None:
        missing.append(f"the CLIP folder {clip} is missing")
    if not head.is_file():
        missing.append(f"the head file {head} is missing")
    return missing


@register_metric("aesthetic")
class Aesthetic(Metric):
    term = "aesthetic"

    def __init__(self, cfg, ctx) -> None:
        super().__init__(cfg, ctx)
        self.values: dict[str, float] = {}
        self.raw: dict[str, float] = {}
        missing = _missing_parts(cfg)
        self.stand_in = bool(missing)
        if missing:
            if not cfg.evaluate.allow_standin:
                raise ArtifactError(
                    f"aesthetic: {' and '.join(missing)} (evaluate.allow_standin is false). To get"
                    f" the LAION predictor: {HOW_TO_GET}"
                )
            self.note = STANDIN_NOTE.format(missing=" and ".join(missing))
            return
        self.note = ""
        self._load(cfg, ctx)

    def _load(self, cfg, ctx) -> None:
        clip = cfg.evaluate.clip
        try:
            self.clip = CLIPVisionModelWithProjection.from_pretrained(clip, local_files_only=True).to(ctx.device).eval()
        except (OSError, ValueError) as exc:
            raise ArtifactError(
                f"aesthetic: cannot load CLIP from {clip} ({str(exc).splitlines()[0]}). {HOW_TO_GET}"
            ) from None
        try:
            self.processor = CLIPImageProcessor.from_pretrained(clip, local_files_only=True)
        except (OSError, ValueError):
            self.processor = CLIPImageProcessor()  # OpenAI CLIP's preprocessing is the default
        head_path = Path(cfg.evaluate.aesthetic_head)
        self.head = build_head(read_head_state(head_path)).to(ctx.device)
        dim = self.head.layers[0].in_features
        if dim != self.clip.config.projection_dim:
            raise ArtifactError(
                f"aesthetic: head {head_path} takes {dim}-d embeddings but CLIP {clip} gives"
                f" {self.clip.config.projection_dim}-d; the LAION head goes with ViT-L/14 (768-d)"
            )
        local = pretrained_source(clip) == "local"
        clip_file = weights_file(Path(clip)) if local else None
        p = self.processor
        self.info = {
            "model": f"{Path(clip).resolve() if local else clip} + {head_path.resolve()}",
            "model_sha256": f"clip:{sha256_file(clip_file) if clip_file else ''}"
            f" head:{sha256_file(head_path)}",
            "preprocessing": {
                "processor": "CLIPImageProcessor",
                "size": dict(p.size),
                "crop_size": dict(p.crop_size) if p.do_center_crop else None,
                "resample": int(p.resample),
                "image_mean": list(p.image_mean),
                "image_std": list(p.image_std),
                "embedding": "image_embeds, L2-normalised",
            },
        }

    def scores(self, images: list[np.ndarray]) -> list[float]:
        """Raw LAION scores (about 1..10) of RGB images, or stand-in values in [0, 1]."""
        if self.stand_in:
            return [standin_score(im) for im in images]
        pixel_values = self.processor(images=images, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            emb = self.clip(pixel_values=pixel_values.to(self.ctx.device)).image_embeds
            emb = emb / emb.norm(dim=-1, keepdim=True)
            return self.head(emb.float())[:, 0].cpu().double().tolist()

    def update(self, batch: Batch) -> None:
        for stem, raw in zip(batch.stems, self.scores(batch.generated)):
            self.raw[stem] = raw
            self.values[stem] = raw if self.stand_in else float(np.clip(raw / 10.0, 0.0, 1.0))

    def result(self) -> MetricResult:
        extra = {} if self.stand_in else {"mean_raw_score_1_to_10": float(np.mean(list(self.raw.values())))}
        return MetricResult(float(np.mean(list(self.values.values()))), dict(self.values), extra)

    def describe(self) -> dict[str, Any]:
        if self.stand_in:
            return {
                "model": "STAND-IN no-reference measure (colourfulness, contrast, sharpness)",
                "model_sha256": "",
                "variant": "standin-v1: (M/(M+60) + min(1, 2*std/255) + V/(V+300)) / 3",
                "preprocessing": "RGB resized to 512x384 with cv2.INTER_AREA",
                "stand_in": True,
                "note": self.note,
            }
        return {**self.info, "variant": "laion sac+logos+ava1-l14-linearMSE, score/10 clipped to [0,1]",
                "stand_in": False, "note": ""}
