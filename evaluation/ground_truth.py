"""The ceiling's inputs: the ground truth scored through the same scorer (cached), and the style
ceiling from a style oracle.

    run_ground_truth(cfg, data_dir, "val", out=None)    # `landscape evaluate --ground-truth`
    parts = resolve_ceiling(cfg, inputs, CeilingChoice(folder=..., style_folder=...))
    ceiling.ceiling_block(generated_scores, *parts)     # the scores.json block

The ground truth's evaluation is an ordinary evaluate folder (manifest extra: ground_truth, key)
under `<cache_dir>/ceiling/val-<key>` unless `--out` says where. Its key names the data (the
preprocess manifest's sha256), the split and the scorer's identity (`scorer_identity`: every
evaluate setting that changes a number, and the path, size and mtime of every model file), so a
second call with the same data and scorer reuses it without loading a model; a changed model
file or setting makes a new one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from pipeline.core.artifacts import StageResult, check_replaceable, manifest_hash, read_manifest
from pipeline.core.config import Config, config_to_dict
from pipeline.core.errors import ArtifactError, ConfigError
from pipeline.core.inputs import resolve_inputs as resolve_split_inputs

from .ceiling import not_applicable
from .inputs import EvalInputs
from .outputs import evaluate_summary, write_evaluation
from .registry import MetricContext, get_metric
from .scoring import prepare_items, score_items

MODEL_KEYS = ("segformer", "segformer_class_map", "clip", "aesthetic_head", "fid_weights")
SPEED_KEYS = ("batch_size", "cache_dir", "report_rows")  # change the time a score takes, never the score
GT_STAGE = "ground-truth"  # the "generated_stage" recorded for the ground truth's own photos
HOW = "landscape evaluate --ground-truth --data DIR --split val [--out DIR] (same --config and --set)"


# ---------------------------------------------------------------------------- identity and cache
def _path_identity(value: str) -> dict:
    """A model setting's identity without reading the file: path, size and mtime of each file."""
    path = Path(value)
    if path.is_file():
        st = path.stat()
        return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return {"path": str(path.resolve()), "files": {str(p.relative_to(path)): [p.stat().st_size, p.stat().st_mtime_ns]
                                                       for p in files}}
    return {"value": value, "exists": False}  # a hub id, an empty setting or a missing file


def scorer_identity(cfg: Config) -> dict:
    """{"settings": evaluate settings that change numbers, "models": identity of each model file}."""
    settings = {k: v for k, v in config_to_dict(cfg.evaluate).items() if k not in SPEED_KEYS}
    models = {k: _path_identity(settings[k]) for k in MODEL_KEYS if settings.get(k)}
    return {"settings": settings, "models": models}


def ceiling_key(data_fingerprint: str, split: str, identity: dict) -> str:
    """sha256 naming the ground truth's evaluation: data, split and scorer identity."""
    blob = json.dumps({"data": data_fingerprint, "split": split, "scorer": identity}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def default_ceiling_dir(cfg: Config, split: str, key: str) -> Path:
    return Path(cfg.evaluate.cache_dir) / "ceiling" / f"{split}-{key[:16]}"


def _cached(folder: Path, key: str) -> dict | None:
    """The manifest of a finished ground-truth evaluation with this key in `folder`, else None."""
    try:
        manifest = read_manifest(folder, "evaluate")
    except ArtifactError:
        return None
    extra = manifest.get("extra", {})
    ok = extra.get("ground_truth") is True and extra.get("ceiling_key") == key
    return manifest if ok and (folder / "scores.json").is_file() else None


# ---------------------------------------------------------------------------- the ground truth
def ground_truth_inputs(data_dir: str | Path, split: str = "val") -> EvalInputs:
    """The ground-truth photos of `split` of a preprocessed folder as the scored 'generated' images."""
    if split != "val":
        raise ConfigError(f"--ground-truth scores the validation split's own photos; the {split} split's"
                          " ground truth is not available (the organisers keep the test photos)")
    sp = resolve_split_inputs(data_dir, split, need=("labels", "pairs", "refs", "gt_photos"))
    return EvalInputs(sp.gt_photos_dir, sp.labels_dir, sp.pairs_json, sp.refs_dir, sp.train_photos_dir,
                      sp.data_dir, sp.split)


def run_ground_truth(cfg: Config, data_dir: str | Path, split: str = "val", out: str | Path | None = None, *,
                     progress: bool = True, log: Callable[[str], None] = print) -> StageResult:
    """Score the ground-truth photos of `split` into `out` (default: the ceiling cache folder);
    reuse a finished one with the same key (StageResult.up_to_date, nothing loaded or scored)."""
    inputs = ground_truth_inputs(data_dir, split)
    fingerprint, identity = manifest_hash(data_dir), scorer_identity(cfg)
    key = ceiling_key(fingerprint, split, identity)
    out = Path(out) if out is not None else default_ceiling_dir(cfg, split, key)
    found = _cached(out, key)
    if found is not None:
        return StageResult(found, [f"ground truth of {data_dir} ({split}): up to date in {out} (same data and"
                                   " scorer; nothing recomputed)"], up_to_date=True)
    check_replaceable(out, "evaluate")
    items = prepare_items(cfg, inputs, allow_any_size=True)  # the dataset's own photos, any size
    scores, per_image = score_items(cfg, inputs, items, progress=progress)
    scores["inputs"].update(generated_stage=GT_STAGE, data_manifest=fingerprint)
    scores["ground_truth"] = {"data": fingerprint, "data_dir": str(Path(data_dir).resolve()), "split": split,
                              "key": key, "scorer": identity}
    scores["ceiling"] = not_applicable("this evaluation is the ground truth: the ceiling of the others")
    manifest = write_evaluation(out, cfg, scores, items, per_image, inputs={"data": fingerprint},
                                extra={"ground_truth": True, "ceiling_key": key})
    return StageResult(manifest, [f"ground truth of {data_dir} ({split}): {len(items)} photos scored"]
                       + evaluate_summary(scores, out))


def load_ground_truth(folder: str | Path, cfg: Config, inputs: EvalInputs) -> tuple[dict, dict]:
    """(scores, provenance) of a ground-truth evaluation folder (`--ceiling DIR`); ArtifactError
    when it is something else, or was made from other data or with another scorer."""
    folder = Path(folder)
    manifest = read_manifest(folder, "evaluate")
    if not manifest.get("extra", {}).get("ground_truth"):
        raise ArtifactError(f"--ceiling {folder}: an evaluation of generated images, not of the ground"
                            f" truth; make one with `{HOW}`")
    scores = json.loads((folder / "scores.json").read_text(encoding="utf-8"))
    gt = scores["ground_truth"]
    identity = scorer_identity(cfg)
    if gt["scorer"] != identity:
        differ = sorted(k for part in ("settings", "models")
                        for k in set(gt["scorer"][part]) | set(identity[part])
                        if gt["scorer"][part].get(k) != identity[part].get(k))
        raise ArtifactError(f"--ceiling {folder}: scored with another scorer (evaluate.{', evaluate.'.join(differ)}"
                            f" differ, settings or model files); re-run `{HOW}`")
    if inputs.data_dir is not None and gt["data"] != manifest_hash(inputs.data_dir):
        raise ArtifactError(f"--ceiling {folder}: made from another preprocess than {inputs.data_dir}"
                            f" (stale); re-run `{HOW}`")
    source = {"folder": str(folder.resolve()), "manifest": manifest_hash(folder), "data": gt["data"],
              "data_dir": gt["data_dir"], "split": gt["split"], "key": gt["key"], "scorer": gt["scorer"]}
    return scores, source


# ---------------------------------------------------------------------------- the style ceiling
def _style_metric_names(cfg: Config) -> list[str]:
    names = [n for n in cfg.evaluate.metrics if get_metric(n).term == "style"]
    if not names:
        raise ConfigError("--style-ceiling: evaluate.metrics has no style metric to score it with")
    return names


def _style_variants(cfg: Config, names: list[str]) -> dict[str, str]:
    """{metric name: its variant} as the current config describes it (style metrics load no model)."""
    ctx = MetricContext(device="cpu", progress=False)
    return {n: get_metric(n)(cfg, ctx).describe()["variant"] for n in names}


def _evaluated_oracle(folder: Path, cfg: Config, names: list[str]) -> dict:
    scores = json.loads((folder / "scores.json").read_text(encoding="utf-8"))
    stage = scores["inputs"].get("generated_stage") or "plain"
    if stage != "style-oracle":
        raise ArtifactError(f"--style-ceiling {folder}: an evaluation of {stage} images, not of a style"
                            " oracle (`landscape style-oracle`)")
    want = _style_variants(cfg, names)
    got = {n: scores["metrics"].get(n, {}).get("variant") for n in names}
    if got != want:
        raise ArtifactError(f"--style-ceiling {folder}: its style was scored as {got}, now {want}; "
                            "evaluate the oracle folder again or pass the oracle folder itself")
    return {"value": scores["terms"]["style"], "source": "evaluated style oracle", "folder": str(folder.resolve()),
            "manifest": manifest_hash(folder), "oracle": scores["inputs"].get("generated"),
            "variant": got, "count": scores["counts"]["images"]}


def style_ceiling(cfg: Config, inputs: EvalInputs, folder: str | Path, progress: bool = False) -> dict:
    """The style ceiling from `--style-ceiling DIR`: an evaluated style-oracle folder (its style
    term) or a style-oracle image folder (scored now with the style metric only, same maps and
    references). ArtifactError for any other folder or a stale one."""
    folder, names = Path(folder), _style_metric_names(cfg)
    manifest = read_manifest(folder, ("style-oracle", "evaluate"))
    if manifest["stage"] == "evaluate":
        return _evaluated_oracle(folder, cfg, names)
    recorded = manifest.get("inputs", {}).get("data")
    if inputs.data_dir is not None and recorded and recorded != manifest_hash(inputs.data_dir):
        raise ArtifactError(f"--style-ceiling {folder}: painted from another preprocess than {inputs.data_dir}"
                            " (stale); re-run `landscape style-oracle`")
    oracle = replace(inputs, generated_dir=folder)
    items = prepare_items(cfg, oracle, allow_any_size=True, metric_names=names)
    scores, _ = score_items(cfg, oracle, items, progress=progress, metric_names=names)
    return {"value": scores["terms"]["style"], "source": "style oracle images, scored now", "folder": str(folder.resolve()),
            "manifest": manifest_hash(folder), "oracle": str(folder.resolve()),
            "variant": {n: scores["metrics"][n]["variant"] for n in names}, "count": len(items)}


# ---------------------------------------------------------------------------- both, for an evaluation
@dataclass(frozen=True)
class CeilingChoice:
    """folder: `--ceiling DIR` (a ground-truth evaluation); style_folder: `--style-ceiling DIR`;
    compute: score the ground truth (cached) when no folder is given and `--data --split val` is."""

    folder: Path | None = None
    style_folder: Path | None = None
    compute: bool = True


def resolve_ceiling(cfg: Config, inputs: EvalInputs, choice: CeilingChoice, *, progress: bool = True,
                    log: Callable[[str], None] = print) -> tuple[dict | None, dict | None, dict | None, str]:
    """(ground-truth scores, their provenance, style ceiling, note): the arguments of
    `ceiling.ceiling_block` after the generated scores; note says why there is no ground truth."""
    style = style_ceiling(cfg, inputs, choice.style_folder, progress) if choice.style_folder else None
    if choice.folder is not None:
        return (*load_ground_truth(choice.folder, cfg, inputs), style, "")
    if inputs.data_dir is None:
        return None, None, style, ("no ground truth: scored from explicit paths; pass --data DIR --split val"
                                   " (computed once, cached) or --ceiling DIR")
    if inputs.split != "val":
        return None, None, style, f"no ground truth: the {inputs.split} split's photos are the organisers'"
    if not choice.compute:
        return None, None, style, "no ground truth: --no-ceiling"
    result = run_ground_truth(cfg, inputs.data_dir, "val", progress=progress, log=log)
    if not result.up_to_date:
        log(f"ceiling: scored the ground truth once ({result.manifest['counts']['images']} photos); cached")
    key = result.manifest["extra"]["ceiling_key"]
    return (*load_ground_truth(default_ceiling_dir(cfg, "val", key), cfg, inputs), style, "")
