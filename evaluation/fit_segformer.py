"""`landscape fit-segformer`: fit the mask-accuracy scorer's SegFormer on the training labels.

Reads a preprocessed folder (through `PreprocessedData`: the train and val photos and labels),
trains `SegformerForSemanticSegmentation` with 29 labels (from `[fit_segformer]` sizes, or from a
pretrained SegFormer when `fit_segformer.pretrained` is set), reports pixel accuracy on the
validation photos, and saves with `save_pretrained` plus the `SegformerImageProcessor` that
resizes to (height, width), `fit_log.csv` and `manifest.json` (stage "fit-segformer"). The whole
folder is built by `staged_folder`: `--out` is replaced only when the fit succeeds and only when
it is new, empty or an earlier fit-segformer output (never `weights/` itself).
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

from pipeline.core.artifacts import StageResult, check_replaceable, staged_folder, write_manifest
from pipeline.core.classes import CLASS_NAMES, NUM_CLASSES
from pipeline.core.config import Config, config_hash, config_to_dict
from pipeline.core.errors import ArtifactError, DatasetError
from pipeline.core.preprocessed import PreprocessedData

from .device import resolve_device

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_DEFAULT_HEADS = (1, 2, 5, 8)
_DEFAULT_SR = (8, 4, 2, 1)
FIT_LOG_COLUMNS = ["step", "loss", "val_pixel_accuracy", "seconds"]


def _heads_for(hidden: int, wanted: int) -> int:
    """The largest head count <= wanted that divides the width."""
    h = max(1, wanted)
    while hidden % h:
        h -= 1
    return h


def build_model(cfg: Config):
    """A SegformerForSemanticSegmentation with the 29 classes: from `pretrained` or from sizes."""
    fs = cfg.fit_segformer
    id2label = {i: n for i, n in enumerate(CLASS_NAMES)}
    label2id = {n: i for i, n in id2label.items()}
    if fs.pretrained:
        try:
            return SegformerForSemanticSegmentation.from_pretrained(
                fs.pretrained, num_labels=NUM_CLASSES, id2label=id2label, label2id=label2id,
                ignore_mismatched_sizes=True,  # a new 29-way classifier on the pretrained encoder
            )
        except (OSError, ValueError) as exc:
            raise ArtifactError(
                f"fit_segformer.pretrained={fs.pretrained!r} cannot be loaded ({str(exc).splitlines()[0]});"
                " give a local save_pretrained folder (e.g. a SegFormer/MiT checkpoint) or leave it empty"
            ) from None
    n = len(fs.hidden_sizes)
    conf = SegformerConfig(
        num_labels=NUM_CLASSES, id2label=id2label, label2id=label2id,
        num_encoder_blocks=n,
        hidden_sizes=list(fs.hidden_sizes),
        depths=list(fs.depths),
        num_attention_heads=[_heads_for(h, _DEFAULT_HEADS[min(i, 3)]) for i, h in enumerate(fs.hidden_sizes)],
        sr_ratios=[_DEFAULT_SR[min(i, 3)] for i in range(n)],
        patch_sizes=[7] + [3] * (n - 1),
        strides=[4] + [2] * (n - 1),
        mlp_ratios=[4] * n,
        decoder_hidden_size=fs.decoder_hidden_size,
        semantic_loss_ignore_index=255,
    )
    return SegformerForSemanticSegmentation(conf)


def make_processor(height: int, width: int):
    """The SegformerImageProcessor saved with the model: resize to (height, width), ImageNet norm."""
    return SegformerImageProcessor(
        size={"height": height, "width": width}, do_reduce_labels=False,
        image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD),
    )


def _to_input(images: np.ndarray, height: int, width: int, device):
    """(B, H, W, 3) uint8 -> normalised (B, 3, height, width) float tensor (bilinear if resized)."""
    # a copy: slices of memory-mapped arrays are read-only
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).to(device).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


def _to_labels(labels: np.ndarray, height: int, width: int, device):
    y = torch.from_numpy(np.array(labels, dtype=np.int64)).to(device)
    if y.shape[-2:] != (height, width):
        y = F.interpolate(y[:, None].float(), size=(height, width), mode="nearest")[:, 0].long()
    return y


def pixel_accuracy_of(model, images: np.ndarray, labels: np.ndarray, cfg: Config, device, batch_size: int = 16) -> float:
    """Mean over images of (gt == pred).sum() / (H * W); logits upsampled to the labels' size."""
    fs = cfg.fit_segformer
    accs = []
    model.eval()
    with torch.inference_mode():
        for s in range(0, len(images), batch_size):
            x = _to_input(images[s : s + batch_size], fs.height, fs.width, device)
            logits = model(pixel_values=x).logits
            up = F.interpolate(logits, size=labels.shape[1:], mode="bilinear", align_corners=False)
            pred = up.argmax(1).cpu().numpy()
            gt = labels[s : s + batch_size]
            accs.extend(((pred == gt).reshape(len(gt), -1).mean(1)).tolist())
    model.train()
    return float(np.mean(accs))


def _optimizer(model, cfg: Config):
    """AdamW (no weight decay on norms and biases) and its warm-up + linear-decay schedule."""
    fs = cfg.fit_segformer
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": fs.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=fs.lr,
    )

    def lr_at(step: int) -> float:
        if step < fs.warmup_steps:
            return (step + 1) / fs.warmup_steps
        return max(0.0, 1.0 - (step - fs.warmup_steps) / max(1, fs.steps - fs.warmup_steps))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_at)


def _batches(x: np.ndarray, y: np.ndarray, cfg: Config, rng: np.random.Generator):
    """Endless (photos, labels) batches: epochs in a fresh random order, optional random flips."""
    fs = cfg.fit_segformer
    n = len(x)
    bs = min(fs.batch_size, n)
    order, pos = rng.permutation(n), 0
    while True:
        if pos + bs > n:
            order, pos = rng.permutation(n), 0
        idx = np.sort(order[pos : pos + bs])
        pos += bs
        xb, yb = x[idx], y[idx]
        if fs.flip:
            flip = rng.random(len(idx)) < 0.5
            xb = np.where(flip[:, None, None, None], xb[:, :, ::-1], xb)
            yb = np.where(flip[:, None, None], yb[:, :, ::-1], yb)
        yield np.ascontiguousarray(xb), np.ascontiguousarray(yb)


def fit_segformer_arrays(
    cfg: Config,
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    device,
    *,
    progress: bool = True,
):
    """Train on (N, H, W, 3) uint8 photos and (N, H, W) uint8 labels; return (model, log rows, val acc)."""
    fs = cfg.fit_segformer
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_model(cfg).to(device).train()
    opt, sched = _optimizer(model, cfg)
    batches = _batches(train_x, train_y, cfg, rng)
    rows: list[dict] = []
    t0, running = time.perf_counter(), None
    with tqdm(total=fs.steps, desc="fit-segformer", unit="step", disable=not progress) as bar:
        for step in range(fs.steps):
            xb, yb = next(batches)
            loss = model(pixel_values=_to_input(xb, fs.height, fs.width, device),
                         labels=_to_labels(yb, fs.height, fs.width, device)).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
            bar.set_postfix(loss=f"{running:.3f}")
            bar.update(1)
            last = step == fs.steps - 1
            if last or (fs.eval_every and (step + 1) % fs.eval_every == 0):
                acc = pixel_accuracy_of(model, val_x, val_y, cfg, device)
                rows.append({"step": step + 1, "loss": round(running, 5), "val_pixel_accuracy": round(acc, 5),
                             "seconds": round(time.perf_counter() - t0, 2)})
                if not last:
                    bar.write(f"step {step + 1}: loss {running:.4f}, val pixel accuracy {acc:.4f}")
    return model.eval(), rows, rows[-1]["val_pixel_accuracy"]


def load_training_arrays(data: str | Path) -> tuple[PreprocessedData, dict[str, dict[str, np.ndarray]]]:
    """The preprocess folder and its {"train"|"val": {"images", "labels"}} arrays (memory-mapped),
    checked: uint8 shapes (N,H,W,3)/(N,H,W), both splits non-empty, class ids 0..28."""
    folder = PreprocessedData.open(data)
    arrays = {split: folder.arrays(split, ("images", "labels")) for split in ("train", "val")}
    for split, a in arrays.items():
        x, y = a["images"], a["labels"]
        if x.dtype != np.uint8 or y.dtype != np.uint8 or x.ndim != 4 or y.shape != x.shape[:3]:
            raise DatasetError(f"{data}: {split} arrays have shapes {x.shape}/{y.shape}, expected"
                               " (N,H,W,3)/(N,H,W) uint8; re-run `landscape preprocess`")
    counts = {split: len(a["images"]) for split, a in arrays.items()}
    if not all(counts.values()):
        raise DatasetError(
            f"{data}: {counts['train']} training and {counts['val']} validation photos; fit-segformer"
            " needs both (set data.val_count > 0 and re-run preprocess)"
        )
    if any(int(a["labels"].max()) >= NUM_CLASSES for a in arrays.values()):
        raise DatasetError(f"{data}: label values above {NUM_CLASSES - 1}; re-run `landscape preprocess`")
    return folder, arrays


def run_fit_segformer(
    cfg: Config,
    data: str | Path,
    out: str | Path,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> StageResult:
    """Fit on the preprocess folder `data`; save the scorer into `out` (staged, swapped in whole);
    return StageResult(its manifest, the lines the command prints)."""
    t0 = time.perf_counter()
    folder, arrays = load_training_arrays(data)
    device = resolve_device(cfg.device)
    check_replaceable(out, "fit-segformer")  # a wrong --out is refused before the long fit
    (tx, ty), (vx, vy) = ((arrays[s]["images"], arrays[s]["labels"]) for s in ("train", "val"))
    fs = cfg.fit_segformer
    log(f"fit-segformer: {len(tx)} training / {len(vx)} validation photos at {tx.shape[1]}x{tx.shape[2]},"
        f" input {fs.height}x{fs.width}, {fs.steps} steps of {fs.batch_size} on {device}")
    with staged_folder(out, stage="fit-segformer") as tmp:
        model, rows, acc = fit_segformer_arrays(cfg, np.asarray(tx), np.asarray(ty), np.asarray(vx),
                                                np.asarray(vy), device, progress=progress)
        save_scorer(model, cfg, tmp, rows)
        seconds = time.perf_counter() - t0
        manifest = write_manifest(
            tmp, "fit-segformer", config_hash=config_hash(cfg, "fit_segformer"),
            inputs={"data": folder.fingerprint()}, counts={"train_images": len(tx)},
            extra={"val_pixel_accuracy": acc, "seconds": round(seconds, 2), "train_images": len(tx),
                   "val_images": len(vx), "device": str(device), "fit_segformer": config_to_dict(fs),
                   "seed": cfg.seed},
        )
    return StageResult(manifest, [
        f"fit-segformer: validation pixel accuracy {acc:.4f} after {fs.steps} steps in {seconds:.0f} s;"
        f" saved to {out} (use it with --set evaluate.segformer={out})"
    ])


def save_scorer(model, cfg: Config, folder: str | Path, rows: list[dict]) -> None:
    """save_pretrained (safetensors) + the processor + fit_log.csv into `folder` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    make_processor(cfg.fit_segformer.height, cfg.fit_segformer.width).save_pretrained(folder)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIT_LOG_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    (folder / "fit_log.csv").write_text(buf.getvalue(), encoding="utf-8")
