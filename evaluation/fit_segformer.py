"""`landscape fit-segformer`: fit the mask-accuracy scorer's SegFormer on the training labels.

Reads a preprocessed folder (`artifacts/data/<id>/`: train_images.npy, train_labels.npy,
val_images.npy, val_labels.npy), trains `SegformerForSemanticSegmentation` with 29 labels (from
`[fit_segformer]` sizes, or from a pretrained SegFormer when `fit_segformer.pretrained` is set),
reports pixel accuracy on the validation photos, and saves with `save_pretrained` plus the
`SegformerImageProcessor` that resizes to (height, width): written into a temp folder and renamed
onto `--out` when complete, with `fit_log.csv` and `manifest.json` (stage "fit-segformer").
"""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.core.artifacts import manifest_hash, read_manifest, write_manifest
from pipeline.core.config import Config, config_hash, config_to_dict
from pipeline.core.classes import CLASS_NAMES, NUM_CLASSES
from pipeline.core.errors import ArtifactError, DatasetError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_DEFAULT_HEADS = (1, 2, 5, 8)
_DEFAULT_SR = (8, 4, 2, 1)


def _heads_for(hidden: int, wanted: int) -> int:
    """The largest head count <= wanted that divides the width."""
    h = max(1, wanted)
    while hidden % h:
        h -= 1
    return h


def build_model(cfg: Config):
    """A SegformerForSemanticSegmentation with the 29 classes: from `pretrained` or from sizes."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

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
    from transformers import SegformerImageProcessor

    return SegformerImageProcessor(
        size={"height": height, "width": width}, do_reduce_labels=False,
        image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD),
    )


def _to_input(images: np.ndarray, height: int, width: int, device):
    """(B, H, W, 3) uint8 -> normalised (B, 3, height, width) float tensor (bilinear if resized)."""
    import torch
    import torch.nn.functional as F

    # a copy: slices of memory-mapped arrays are read-only
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).to(device).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


def _to_labels(labels: np.ndarray, height: int, width: int, device):
    import torch
    import torch.nn.functional as F

    y = torch.from_numpy(np.array(labels, dtype=np.int64)).to(device)
    if y.shape[-2:] != (height, width):
        y = F.interpolate(y[:, None].float(), size=(height, width), mode="nearest")[:, 0].long()
    return y


def pixel_accuracy_of(model, images: np.ndarray, labels: np.ndarray, cfg: Config, device, batch_size: int = 16) -> float:
    """Mean over images of (gt == pred).sum() / (H * W); logits upsampled to the labels' size."""
    import torch
    import torch.nn.functional as F

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


def fit_segformer_arrays(
    cfg: Config,
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    device,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
):
    """Train on (N, H, W, 3) uint8 photos and (N, H, W) uint8 labels; return (model, log rows, val acc)."""
    import torch
    from tqdm import tqdm

    fs = cfg.fit_segformer
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_model(cfg).to(device).train()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)  # no weight decay on norms and biases
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": fs.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=fs.lr,
    )

    def lr_at(step: int) -> float:
        if step < fs.warmup_steps:
            return (step + 1) / fs.warmup_steps
        return max(0.0, 1.0 - (step - fs.warmup_steps) / max(1, fs.steps - fs.warmup_steps))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    rows: list[dict] = []
    n = len(train_x)
    bs = min(fs.batch_size, n)
    order, pos = rng.permutation(n), 0
    t0 = time.perf_counter()
    running = None
    with tqdm(total=fs.steps, desc="fit-segformer", unit="step", disable=not progress) as bar:
        for step in range(fs.steps):
            if pos + bs > n:
                order, pos = rng.permutation(n), 0
            idx = np.sort(order[pos : pos + bs])
            pos += bs
            xb, yb = train_x[idx], train_y[idx]
            if fs.flip:
                flip = rng.random(len(idx)) < 0.5
                xb = np.where(flip[:, None, None, None], xb[:, :, ::-1], xb)
                yb = np.where(flip[:, None, None], yb[:, :, ::-1], yb)
            x = _to_input(np.ascontiguousarray(xb), fs.height, fs.width, device)
            y = _to_labels(np.ascontiguousarray(yb), fs.height, fs.width, device)
            loss = model(pixel_values=x, labels=y).loss
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


def load_preprocessed(data_dir: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """train/val photos and labels of a preprocess folder (checked shapes and dtypes)."""
    data_dir = Path(data_dir)
    read_manifest(data_dir, "preprocess")
    arrays = []
    for name in ("train_images", "train_labels", "val_images", "val_labels"):
        p = data_dir / f"{name}.npy"
        if not p.is_file():
            raise ArtifactError(f"{data_dir}: {p.name} missing; re-run `landscape preprocess`")
        arrays.append(np.load(p, mmap_mode="r", allow_pickle=False))
    tx, ty, vx, vy = arrays
    for x, y, what in ((tx, ty, "train"), (vx, vy, "val")):
        if x.dtype != np.uint8 or y.dtype != np.uint8 or x.ndim != 4 or y.shape != x.shape[:3]:
            raise DatasetError(f"{data_dir}: {what} arrays have shapes {x.shape}/{y.shape}, expected (N,H,W,3)/(N,H,W) uint8")
    if len(tx) == 0 or len(vx) == 0:
        raise DatasetError(
            f"{data_dir}: {len(tx)} training and {len(vx)} validation photos; fit-segformer needs both"
            " (set data.val_count > 0 and re-run preprocess)"
        )
    if int(ty.max()) >= NUM_CLASSES or int(vy.max()) >= NUM_CLASSES:
        raise DatasetError(f"{data_dir}: label values above {NUM_CLASSES - 1}")
    return tx, ty, vx, vy


def run_fit_segformer(
    cfg: Config,
    data_dir: str | Path,
    out_dir: str | Path,
    device,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Fit, save atomically into `out_dir`, return {"val_pixel_accuracy", "seconds", "out"}."""
    t0 = time.perf_counter()
    tx, ty, vx, vy = load_preprocessed(data_dir)
    fs = cfg.fit_segformer
    log(f"fit-segformer: {len(tx)} training / {len(vx)} validation photos at {tx.shape[1]}x{tx.shape[2]},"
        f" input {fs.height}x{fs.width}, {fs.steps} steps of {fs.batch_size} on {device}")
    model, rows, acc = fit_segformer_arrays(
        cfg, np.asarray(tx), np.asarray(ty), np.asarray(vx), np.asarray(vy), device, progress=progress, log=log
    )
    seconds = time.perf_counter() - t0
    out = Path(out_dir)
    save_scorer(model, cfg, out, rows, extra={
        "val_pixel_accuracy": acc, "seconds": round(seconds, 2), "train_images": len(tx),
        "val_images": len(vx), "device": str(device), "fit_segformer": config_to_dict(fs), "seed": cfg.seed,
    }, inputs={"data": manifest_hash(data_dir)})
    return {"val_pixel_accuracy": acc, "seconds": seconds, "out": str(out), "log": rows}


def save_scorer(model, cfg: Config, out: Path, rows: list[dict], extra: dict, inputs: dict[str, str]) -> None:
    """save_pretrained + processor + fit_log.csv + manifest into a temp folder, renamed onto `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(staged, safe_serialization=True)
        make_processor(cfg.fit_segformer.height, cfg.fit_segformer.width).save_pretrained(staged)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["step", "loss", "val_pixel_accuracy", "seconds"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        (staged / "fit_log.csv").write_text(buf.getvalue())
        write_manifest(staged, "fit-segformer", config_hash=config_hash(cfg, "fit_segformer"),
                       inputs=inputs, counts={"train_images": extra.get("train_images", 0)}, extra=extra)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{int(time.time())}"
            out.rename(old)  # the previous scorer is replaced only once the new one is complete
        staged.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
