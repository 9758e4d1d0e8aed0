"""The generate stage: a trained run + label maps + pairing json + reference photos -> JPEGs.

One `<label stem>.jpg` per map at generate.out_width x generate.out_height, made by the EMA
generator: the map is resized (nearest) to the model's data.height x data.width, the reference
photo to the same size for the style encoder, the generated image is upsampled (bicubic) to the
output size, then optionally colour-transferred from the full-size reference.

Images are written atomically, and maps whose image exists are skipped, so a killed run resumes.
A `.generate_state.json` records which weights and settings made the images in the folder; when
they change, the old images are removed first. manifest.json is written last.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .core.artifacts import (atomic_write_bytes, atomic_write_json, manifest_hash, prepare_output_dir,
                        read_manifest, sha256_file, write_manifest)
from .checkpoint import EMA_FILE, load_into, read_checkpoint
from .colour import colour_transfer
from .core.config import Config, config_hash, load_config
from .core.imageio import encode_jpeg, load_label, load_photo
from .core.errors import ArtifactError, DatasetError

STATE_FILE = ".generate_state.json"


def run_config(run_dir: str | Path, overrides: Sequence[str] = ()) -> Config:
    """The run's own config (config.resolved.toml) with `--set` overrides applied."""
    path = Path(run_dir) / "config.resolved.toml"
    if not path.is_file():
        raise ArtifactError(f"{run_dir}: no config.resolved.toml, so it is not a training run"
                            " folder. Train one with `landscape train --out DIR`.")
    return load_config(path, overrides)


def load_generator(cfg: Config, weights: Path, jt):
    """GANModel with its EMA generator/encoder loaded (checked) from `weights`."""
    from .model.ganmodel import GANModel

    model = GANModel(cfg, cfg.data.height, cfg.data.width, for_training=False)
    arrays, header = read_checkpoint(weights)
    load_into(weights, arrays, header, model, ("ema_generator", "ema_encoder"))
    return model, header


def _clear_stale(out_dir: Path, state: dict) -> None:
    """Remove images made by other weights or settings than `state` describes."""
    path = out_dir / STATE_FILE
    old = None
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            old = None
    if old != state:
        for p in out_dir.glob("*.jpg"):
            p.unlink()
        atomic_write_json(path, state)


def _finished(out_dir: Path, state: dict, run_id: str, pairs: dict, labels_dir: Path,
              pairs_json, refs_dir: Path) -> dict | None:
    """The folder's manifest when it already holds every image of these weights and inputs."""
    try:
        manifest = read_manifest(out_dir, "generate", config_hash=state["generate"])
        old_state = json.loads((out_dir / STATE_FILE).read_text())
    except (ArtifactError, OSError, json.JSONDecodeError):
        return None
    extra = manifest.get("extra", {})
    same = (
        old_state == state
        and manifest.get("inputs", {}).get("run") == run_id
        and extra.get("labels") == str(labels_dir.resolve())
        and extra.get("pairs") == str(Path(pairs_json).resolve())
        and extra.get("refs") == str(refs_dir.resolve())
        and all((out_dir / f"{Path(m).stem}.jpg").is_file() for m in pairs)
        and manifest.get("counts", {}).get("images") == len(pairs)
    )
    return manifest if same else None


def run_generate(run_dir: str | Path, labels_dir: str | Path, pairs_json: str | Path,
                 refs_dir: str | Path, out_dir: str | Path, overrides: Sequence[str] = (),
                 checkpoint: str | Path | None = None, split: str = "",
                 progress: bool = True) -> dict:
    """Generate one JPEG per pair into out_dir; return the folder's manifest.

    run_dir: a train stage folder (its manifest is required unless `checkpoint` names a file,
    e.g. an intermediate checkpoint of an unfinished run). overrides: `--set` strings applied
    to the run's config (generate.* keys, device).
    """
    from .data.splits import load_pairs
    from .jt_env import setup_jittor

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    labels_dir, refs_dir = Path(labels_dir), Path(refs_dir)
    cfg = run_config(run_dir, overrides)
    if checkpoint is None:
        read_manifest(run_dir, "train")
        weights = run_dir / EMA_FILE
        run_id = manifest_hash(run_dir)
    else:
        weights = Path(checkpoint)
        run_id = sha256_file(weights) if weights.is_file() else ""
    pairs = load_pairs(pairs_json, labels_dir, refs_dir)
    g = cfg.generate
    state = {"weights": str(weights.resolve()), "weights_sha256": sha256_file(weights),
             "generate": config_hash(cfg, "generate"), "data": config_hash(cfg, "data")}
    done = _finished(out_dir, state, run_id, pairs, labels_dir, pairs_json, refs_dir)
    if done is not None:
        # nothing to do: the manifest (and so what downstream stages recorded of it) stays as it is
        return {**done, "up_to_date": True}
    from .train import limit_cpu_threads

    limit_cpu_threads()
    jt = setup_jittor(cfg.device)
    from .model.ganmodel import images_to_tensor, labels_to_onehot, tensor_to_images

    model, header = load_generator(cfg, weights, jt)

    prepare_output_dir(out_dir)
    for leftover in out_dir.glob(".*.tmp"):
        leftover.unlink()  # a killed run's half-written image
    _clear_stale(out_dir, state)
    names = list(pairs)
    todo = [m for m in names if not (out_dir / f"{Path(m).stem}.jpg").is_file()]
    key = "refined" if g.output == "refined" and cfg.model.kind == "ecgan" and \
        cfg.model.semantic_module else "image"
    h, w, bs = cfg.data.height, cfg.data.width, g.batch_size
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(names), initial=len(names) - len(todo), unit="img",
                   dynamic_ncols=True, file=sys.stderr)
    for start in range(0, len(todo), bs):
        chunk = todo[start:start + bs]
        maps = [load_label(labels_dir / m) for m in chunk]
        refs = [load_photo(refs_dir / pairs[m]) for m in chunk]
        labels = np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST) for m in maps])
        small_refs = np.stack([cv2.resize(r, (w, h), interpolation=cv2.INTER_AREA) for r in refs])
        pad = bs - len(chunk)  # pad the last batch: one batch shape, one set of compiled kernels
        if pad:
            labels = np.concatenate([labels, np.repeat(labels[-1:], pad, 0)])
            small_refs = np.concatenate([small_refs, np.repeat(small_refs[-1:], pad, 0)])
        if g.sample_style:
            # Sampled style codes depend on the image's position only, so a resumed run agrees.
            jt.set_global_seed(cfg.seed + names.index(chunk[0]), different_seed_for_mpi=False)
        out = model.generate(jt.array(labels_to_onehot(labels, cfg.model.num_classes)),
                             jt.array(images_to_tensor(small_refs)), sample_style=g.sample_style)
        images = tensor_to_images(out[key].numpy())[: len(chunk)]
        for name, img, ref in zip(chunk, images, refs):
            big = cv2.resize(img, (g.out_width, g.out_height), interpolation=cv2.INTER_CUBIC)
            big = colour_transfer(big, ref, g.colour_transfer)
            atomic_write_bytes(out_dir / f"{Path(name).stem}.jpg", encode_jpeg(big, g.jpeg_quality))
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return write_manifest(
        out_dir, "generate",
        config_hash=config_hash(cfg, "generate"),
        inputs={"run": run_id},
        counts={"images": len(names), "generated_now": len(todo)},
        extra={"split": split, "labels": str(labels_dir.resolve()),
               "pairs": str(Path(pairs_json).resolve()), "refs": str(refs_dir.resolve()),
               "checkpoint": str(weights.resolve()), "step": header.get("step"),
               "output": key, "colour_transfer": g.colour_transfer,
               "size": [g.out_width, g.out_height]},
    )
