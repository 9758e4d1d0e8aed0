"""The generate stage: a trained run + label maps + pairing json + reference photos -> JPEGs.

One `<label stem>.jpg` per map at generate.out_width x generate.out_height, made by the EMA
generator: the map is resized (nearest) to the model's data.height x data.width, the reference
photo to the same size for the style encoder, the generated image is upsampled (bicubic) to the
output size, then optionally colour-transferred from the full-size reference.

Every input (run, weights, maps, pairing, references) is checked before the output folder is
touched; the folder is then opened with `claim_folder`: only a new, empty or generate-made folder
is written, under an exclusive lock, and a killed run's temp files are removed. Images are
written atomically and maps whose image exists are skipped, so a killed run resumes
(byte-identically). `.generate_state.json` records which weights and settings made the images in
the folder; when they change, the folder's old images are removed first. manifest.json is last.

A run's choice.json (`landscape sweep`: the weights file and generate keys that scored best) is
used by default: its weights unless a checkpoint is given, its keys under any --set.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .checkpoint import EMA_FILE, load_into, read_checkpoint
from .colour import colour_transfer
from .core.artifacts import (StageResult, atomic_write_bytes, atomic_write_json, check_replaceable,
                             claim_folder, manifest_hash, read_manifest, sha256_bytes, sha256_file,
                             write_manifest)
from .core.config import Config, config_hash, load_config, load_run_config
from .core.errors import ArtifactError, LandscapeError
from .core.imageio import encode_jpeg, load_label, load_photo
from .core.inputs import SplitInputs
from .core.preprocessed import PreprocessedData
from .data.layout import Problem, find_bad_files, raise_problems
from .sweep import read_choice

STAGE = "generate"
STATE_FILE = ".generate_state.json"
RUN_CONFIG = "config.resolved.toml"


@dataclass(frozen=True)
class GenerateInputs:
    """What generation reads: a training run folder (its EMA generator, or `checkpoint`, a
    weights file such as an intermediate checkpoint) and the maps with their pairing and
    reference photos (`pipeline.core.inputs.resolve_inputs`)."""

    run_dir: Path
    maps: SplitInputs
    checkpoint: Path | None = None
    use_choice: bool = True  # without a checkpoint: the weights of the run's choice.json, if any

    @property
    def weights(self) -> Path:
        if self.checkpoint is not None:
            return Path(self.checkpoint)
        choice = read_choice(self.run_dir) if self.use_choice else None
        return choice.weights if choice is not None else Path(self.run_dir) / EMA_FILE


@dataclass(frozen=True)
class _Checked:
    """The inputs after their checks: the loaded weights, the pairing, and the state that says
    which weights and settings make the folder's images."""

    weights: Path
    arrays: dict
    header: dict
    pairs: dict[str, str]
    inputs: dict[str, str]  # the manifest's inputs: the run's identity (and the data's)
    state: dict


def run_config(run_dir: str | Path, config_path: str | Path | None = None,
               overrides: Sequence[str] = (), *, use_choice: bool = True) -> Config:
    """The config generation runs with: `config_path` when given, else the run's own
    config.resolved.toml; the generate keys of the run's choice.json (when `use_choice`), then
    `overrides` (`--set` strings) applied on top."""
    own = config_path is None
    if own:
        config_path = Path(run_dir) / RUN_CONFIG
        if not config_path.is_file():
            raise ArtifactError(f"{run_dir}: no {RUN_CONFIG}, so it is not a training run"
                                " folder. Train one with `landscape train --out DIR`.")
    choice = read_choice(run_dir) if use_choice else None
    sets = (choice.sets() if choice else []) + list(overrides)
    # the run's own config: keys it predates take the values it was trained with
    return load_run_config(config_path, sets) if own else load_config(config_path, sets)


def _check_inputs(cfg: Config, inputs: GenerateInputs) -> _Checked:
    """Check the run, read its weights and the pairing (nothing decoded, nothing written)."""
    weights = inputs.weights
    if inputs.checkpoint is None:
        read_manifest(inputs.run_dir, "train")  # a finished run; an unfinished one needs --checkpoint
        run_id = manifest_hash(inputs.run_dir)
    else:
        if not weights.is_file():
            raise ArtifactError(f"{weights}: --checkpoint file not found")
        run_id = sha256_file(weights)
    arrays, header = read_checkpoint(weights)
    maps = inputs.maps
    pairs = maps.load_pairs()
    found = {"run": run_id}
    if maps.data_dir is not None:
        found["data"] = manifest_hash(maps.data_dir)
    state = {"weights": str(weights.resolve()), "weights_sha256": sha256_file(weights),
             "generate": config_hash(cfg, "generate"), "data": config_hash(cfg, "data"),
             "pairs_sha256": sha256_bytes(json.dumps(pairs, sort_keys=True).encode())}
    return _Checked(weights, arrays, header, pairs, found, state)


def _check_images(cfg: Config, maps: SplitInputs, pairs: dict[str, str], progress: bool) -> None:
    """Decode every map and reference once; DatasetError listing the ones that cannot be used."""
    files = [("label", str(maps.labels_dir / m)) for m in pairs]
    files += [("photo", str(maps.refs_dir / r)) for r in sorted(set(pairs.values()))]
    bad = find_bad_files(files, cfg.data.workers, "check inputs", progress)
    problems: list[Problem] = [p for _, path in files for p in bad.get(path, [])]
    raise_problems(problems, "the label maps and reference photos",
                   fix=f"Fix or replace these files (or leave their maps out of {maps.pairs_json})")


def _finished(out: Path, checked: _Checked, maps: SplitInputs) -> dict | None:
    """The folder's manifest when it already holds every image of these weights and inputs."""
    try:
        manifest = read_manifest(out, STAGE, config_hash=checked.state["generate"])
        old_state = json.loads((out / STATE_FILE).read_text())
    except (ArtifactError, OSError, json.JSONDecodeError):
        return None
    extra = manifest.get("extra", {})
    same = (
        old_state == checked.state
        and manifest.get("inputs") == checked.inputs
        and extra.get("labels") == str(maps.labels_dir.resolve())
        and extra.get("pairs") == str(Path(maps.pairs_json).resolve())
        and extra.get("refs") == str(maps.refs_dir.resolve())
        and all((out / f"{Path(m).stem}.jpg").is_file() for m in checked.pairs)
        and manifest.get("counts", {}).get("images") == len(checked.pairs)
    )
    return manifest if same else None


def _clear_stale(folder: Path, state: dict) -> None:
    """Remove the images an earlier run made with other weights or settings than `state`.
    Only called on a folder `claim_folder` accepted: new, empty, or made by this stage."""
    path = folder / STATE_FILE
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        old = None
    if old != state:
        for p in folder.glob("*.jpg"):
            p.unlink()
        atomic_write_json(path, state)


def _verbose_log(line: str) -> None:
    """Device and thread lines: shown with `landscape -v` (stdout stays the summary)."""
    if os.environ.get("LANDSCAPE_VERBOSE") == "1":
        print(line, file=sys.stderr)


def _output_key(cfg: Config) -> str:
    """Which generator output is the image: the ECGAN's refined one when configured."""
    m = cfg.model
    return "refined" if cfg.generate.output == "refined" and m.kind == "ecgan" and m.semantic_module else "image"


def _load_model(cfg: Config, checked: _Checked):
    """GANModel with its EMA generator/encoder loaded from the checked weights (keys and shapes
    checked: ArtifactError when they do not fit this config's model)."""
    from .model.ganmodel import GANModel

    model = GANModel(cfg, cfg.data.height, cfg.data.width, for_training=False)
    load_into(checked.weights, checked.arrays, checked.header, model, ("ema_generator", "ema_encoder"))
    return model


def reference_labels_dir(maps: SplitInputs) -> Path | None:
    """Where the references' own label maps are: the preprocess folder's training labels, else
    the competition layout's sibling of the photos folder (train/imgs -> train/labels)."""
    if maps.data_dir is not None:
        try:
            train_labels = PreprocessedData.open(maps.data_dir).paths.get("train_labels")
        except LandscapeError:
            train_labels = None
        if train_labels and Path(train_labels).is_dir():
            return Path(train_labels)
    if maps.refs_dir is not None and (maps.refs_dir.parent / "labels").is_dir():
        return maps.refs_dir.parent / "labels"
    return None


def _reference_label(labels_dir: Path | None, ref_name: str, shape: tuple[int, int]) -> np.ndarray | None:
    """The reference photo's own label map (class colour hints), None when it has none or it
    does not match the photo's size."""
    if labels_dir is None:
        return None
    path = labels_dir / f"{Path(ref_name).stem}.png"
    if not path.is_file():
        return None
    label = load_label(path)
    return label if label.shape == shape else None


def _generate_batch(cfg: Config, jt, model, maps: list[np.ndarray], refs: list[np.ndarray],
                    seed_index: int, ref_labels: list[np.ndarray | None] | None = None) -> list[np.ndarray]:
    """Generated RGB uint8 images (model size) of one batch of label maps and references
    (ref_labels: each reference's own label map, or None, for the class colour hints)."""
    from .model.ganmodel import images_to_tensor, labels_to_onehot, tensor_to_images

    g, h, w, k = cfg.generate, cfg.data.height, cfg.data.width, cfg.model.num_classes
    labels = np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST) for m in maps])
    small_refs = np.stack([cv2.resize(r, (w, h), interpolation=cv2.INTER_AREA) for r in refs])
    ref_labels = ref_labels or [None] * len(refs)
    # a reference without a label map gets an all-zero one-hot: no hints, the style code decides
    ref_onehot = np.stack([labels_to_onehot(cv2.resize(r, (w, h), interpolation=cv2.INTER_NEAREST)[None], k)[0]
                           if r is not None else np.zeros((k, h, w), np.float32) for r in ref_labels])
    pad = g.batch_size - len(maps)  # pad the last batch: one batch shape, one set of compiled kernels
    if pad:
        labels = np.concatenate([labels, np.repeat(labels[-1:], pad, 0)])
        small_refs = np.concatenate([small_refs, np.repeat(small_refs[-1:], pad, 0)])
        ref_onehot = np.concatenate([ref_onehot, np.repeat(ref_onehot[-1:], pad, 0)])
    if g.sample_style:
        # Sampled style codes depend on the image's position only, so a resumed run agrees.
        jt.set_global_seed(cfg.seed + seed_index, different_seed_for_mpi=False)
    out = model.generate(jt.array(labels_to_onehot(labels, k)), jt.array(images_to_tensor(small_refs)),
                         sample_style=g.sample_style, ref_seg=jt.array(ref_onehot))
    return list(tensor_to_images(out[_output_key(cfg)].numpy())[: len(maps)])


def _generate_missing(cfg: Config, jt, model, maps: SplitInputs, pairs: dict[str, str], folder: Path,
                      progress: bool) -> int:
    """Generate every map of `pairs` whose image is not in `folder` yet; return how many."""
    g = cfg.generate
    names = list(pairs)
    todo = [m for m in names if not (folder / f"{Path(m).stem}.jpg").is_file()]
    ref_labels_dir = reference_labels_dir(maps) if cfg.model.class_hints else None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(names), initial=len(names) - len(todo), unit="img", dynamic_ncols=True,
                   file=sys.stderr)
    for start in range(0, len(todo), g.batch_size):
        chunk = todo[start:start + g.batch_size]
        labels = [load_label(maps.labels_dir / m) for m in chunk]
        refs = [load_photo(maps.refs_dir / pairs[m]) for m in chunk]
        ref_labels = [_reference_label(ref_labels_dir, pairs[m], r.shape[:2]) for m, r in zip(chunk, refs)]
        images = _generate_batch(cfg, jt, model, labels, refs, names.index(chunk[0]), ref_labels)
        for name, img, ref in zip(chunk, images, refs):
            big = cv2.resize(img, (g.out_width, g.out_height), interpolation=cv2.INTER_CUBIC)
            big = colour_transfer(big, ref, g.colour_transfer, g.colour_strength)
            atomic_write_bytes(folder / f"{Path(name).stem}.jpg", encode_jpeg(big, g.jpeg_quality))
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return len(todo)


def _write_manifest(cfg: Config, maps: SplitInputs, checked: _Checked, folder: Path, made: int) -> dict:
    g = cfg.generate
    return write_manifest(
        folder, STAGE,
        config_hash=config_hash(cfg, "generate"),
        inputs=checked.inputs,
        counts={"images": len(checked.pairs), "generated_now": made},
        extra={"split": maps.split, "labels": str(maps.labels_dir.resolve()),
               "pairs": str(Path(maps.pairs_json).resolve()), "refs": str(maps.refs_dir.resolve()),
               "checkpoint": str(checked.weights.resolve()), "step": checked.header.get("step"),
               "output": _output_key(cfg), "colour_transfer": g.colour_transfer,
               "colour_strength": g.colour_strength,
               "size": [g.out_width, g.out_height]},
    )


def _choice_note(cfg: Config, inputs: GenerateInputs, checked: _Checked) -> list[str]:
    """What of the run's choice.json this generation uses: ["; with <file>: ...", warnings]."""
    choice = read_choice(inputs.run_dir) if inputs.use_choice else None
    if choice is None:
        return [""]
    from_choice = inputs.checkpoint is None
    used = [choice.weights.name] if from_choice else []
    used += [f"{k}={v}" for k, v in choice.overrides.items()
             if getattr(cfg.generate, k.split(".", 1)[1], None) == v]
    note = [f"; with the sweep's choice {choice.path}: {', '.join(used)}" if used else ""]
    if from_choice and choice.weights_sha256 not in ("", checked.state["weights_sha256"]):
        note.append(f"warning: {choice.weights} changed after `landscape sweep` chose it; re-run the sweep")
    return note


def _summary(out: Path, manifest: dict, up_to_date: bool, note: Sequence[str] = ("",)) -> list[str]:
    c = manifest["counts"]
    now = "up to date, nothing to do" if up_to_date else f"{c['generated_now']} made now"
    return [f"generate: {c['images']} images in {out} ({now}{note[0]})", *note[1:]]


def run_generate(cfg: Config, inputs: GenerateInputs, out: str | Path, *, progress: bool = True) -> StageResult:
    """Generate one JPEG per pair of `inputs.maps` into the folder `out`.

    cfg: the config to generate with (`run_config`: the run's own, or another, with overrides).
    Returns StageResult(manifest, summary lines, up_to_date). Raises ArtifactError for a missing,
    unfinished or unfitting run or checkpoint and for an `out` that this stage did not make or
    that another run is writing; DatasetError for a bad pairing, map or reference. Every input
    is checked before `out` is touched; a finished folder of the same inputs is left as it is.
    """
    from .jt_env import setup_jittor

    out = Path(out).resolve()
    check_replaceable(out, STAGE)  # fail fast; claim_folder checks again under the lock
    checked = _check_inputs(cfg, inputs)
    note = _choice_note(cfg, inputs, checked)
    done = _finished(out, checked, inputs.maps)
    if done is not None:  # nothing to do: the manifest (what downstream stages recorded) stays
        return StageResult(done, _summary(out, done, True, note), up_to_date=True)
    _check_images(cfg, inputs.maps, checked.pairs, progress)
    jt = setup_jittor(cfg.device, cfg.threads, log=_verbose_log)
    model = _load_model(cfg, checked)
    with claim_folder(out, STAGE) as folder:
        _clear_stale(folder, checked.state)
        made = _generate_missing(cfg, jt, model, inputs.maps, checked.pairs, folder, progress)
        manifest = _write_manifest(cfg, inputs.maps, checked, folder, made)
    return StageResult(manifest, _summary(out, manifest, False, note))
