"""`landscape evaluate`: score a folder of generated images with the configured metrics.

`run_evaluate` decodes each generated image (and its label map and style reference, when a
metric needs them) once, hands every batch to every metric of `cfg.evaluate.metrics`, and writes
into the output folder: `scores.json`, `per_image.csv`, `report.html`, then `manifest.json`
(stage "evaluate") last. No per-metric branches here: metrics come from the registry.
"""

from __future__ import annotations

import csv
import io
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pipeline.core.artifacts import (
    MANIFEST,
    atomic_write_json,
    atomic_write_text,
    check_input_unchanged,
    manifest_hash,
    prepare_output_dir,
    read_manifest,
    write_manifest,
)
from pipeline.core.config import Config, config_hash, config_to_dict
from pipeline.core.errors import ConfigError, DatasetError

from .imageio import IMAGE_EXTS, list_images, read_label_map, read_rgb
from .registry import TERMS, Batch, MetricContext, get_metric
from .score import score_parts

FORMULA = "A = mask_acc * (aesthetic*0.2 + (style*0.5+0.5)*0.3 + (100-min(FID,100))/100*0.5)"


@dataclass
class EvalInputs:
    """Where everything comes from; any part may be None when no metric needs it."""

    generated_dir: Path
    labels_dir: Path | None = None
    pairs_json: Path | None = None
    refs_dir: Path | None = None
    train_photos_dir: Path | None = None
    data_dir: Path | None = None
    split: str | None = None


def resolve_inputs(
    generated_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    split: str | None = None,
    labels_dir: str | Path | None = None,
    pairs_json: str | Path | None = None,
    refs_dir: str | Path | None = None,
    train_photos_dir: str | Path | None = None,
) -> EvalInputs:
    """Explicit paths win; the rest come from a preprocessed folder's split (`--data --split`)."""
    explicit = {
        "labels_dir": labels_dir, "pairs_json": pairs_json, "refs_dir": refs_dir,
        "train_photos_dir": train_photos_dir,
    }
    found: dict[str, Any] = {}
    if data_dir is not None:
        from pipeline.core.inputs import resolve_split

        sp = resolve_split(Path(data_dir), split or "val")
        found = {
            "labels_dir": sp.labels_dir, "pairs_json": sp.pairs_json, "refs_dir": sp.refs_dir,
            "train_photos_dir": sp.train_photos_dir,
        }
    elif split is not None:
        raise ConfigError("--split needs --data (a preprocessed folder artifacts/data/<id>)")
    paths = {k: Path(v) if v is not None else (Path(found[k]) if found.get(k) else None)
             for k, v in explicit.items()}
    return EvalInputs(Path(generated_dir), data_dir=Path(data_dir) if data_dir else None,
                      split=split if data_dir else None, **paths)


def _load_pairs(inputs: EvalInputs) -> dict[str, str]:
    """{map file name: reference path relative to refs_dir}, checked by the data package's reader
    (every map paired, every reference present, nothing outside refs_dir)."""
    from pipeline.core.inputs import load_pairs

    pairs = load_pairs(inputs.pairs_json, inputs.labels_dir, inputs.refs_dir)
    return {Path(k).name: v for k, v in pairs.items()}


def _find_generated(folder: Path, stem: str) -> Path | None:
    for ext in IMAGE_EXTS:
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    return None


@dataclass
class Item:
    stem: str
    generated: Path
    map: Path | None = None
    ref: Path | None = None


def collect_items(inputs: EvalInputs, need_maps: bool, need_refs: bool) -> list[Item]:
    """One Item per scored image: the maps' stems (pairs when references are needed)."""
    gen = inputs.generated_dir
    if need_refs:
        missing = [n for n, v in (("--pairs", inputs.pairs_json), ("--refs", inputs.refs_dir),
                                  ("--labels", inputs.labels_dir)) if v is None]
        if missing:
            raise ConfigError(
                f"the style metric needs {', '.join(missing)} (or --data DIR --split val)"
            )
        pairs = _load_pairs(inputs)
        maps = sorted(pairs)
    elif need_maps:
        if inputs.labels_dir is None:
            raise ConfigError("mask-accuracy needs --labels DIR (or --data DIR --split val)")
        maps = [p.name for p in list_images(inputs.labels_dir) if p.suffix.lower() == ".png"]
        pairs = {}
    else:
        return [Item(p.stem, p) for p in list_images(gen)]
    items, absent = [], []
    for name in maps:
        stem = Path(name).stem
        g = _find_generated(gen, stem)
        if g is None:
            absent.append(stem)
            continue
        items.append(Item(stem, g, inputs.labels_dir / name if inputs.labels_dir else None,
                          inputs.refs_dir / pairs[name] if pairs else None))
    if absent:
        raise DatasetError(
            f"{gen}: {len(absent)} of {len(maps)} label maps have no generated image"
            f" (e.g. {', '.join(absent[:5])}.jpg); generate every map of the split first"
        )
    if not items:
        raise DatasetError(f"{gen}: no generated images to score")
    return items


def resolve_device(name: str):
    """torch.device for "auto" (GPU when present), "cpu" or "cuda"."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for but PyTorch sees no GPU; use --device cpu")
    return torch.device(name)


def _decode(item: Item, need_maps: bool, need_refs: bool):
    return (
        read_rgb(item.generated),
        read_label_map(item.map) if need_maps else None,
        read_rgb(item.ref) if need_refs else None,
    )


def run_evaluate(
    cfg: Config,
    inputs: EvalInputs,
    out_dir: str | Path,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Score `inputs.generated_dir`; write scores.json, per_image.csv, report.html, manifest.json.

    Returns the scores dict (what scores.json holds).
    """
    import torch
    from tqdm import tqdm

    from .report import build_report

    t_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    ev = cfg.evaluate
    gen = inputs.generated_dir
    if not gen.is_dir():
        raise DatasetError(f"--generated {gen}: folder not found")
    gen_manifest = None
    if (gen / MANIFEST).is_file():
        made = read_manifest(gen, "generate")  # refuses a foreign, unfinished or tampered folder
        if inputs.data_dir is not None:  # generated from an older preprocess of this data: stale
            check_input_unchanged(made, "data", inputs.data_dir, gen)
        gen_manifest = manifest_hash(gen)
    else:
        log(f"note: {gen} has no manifest.json; scoring it as a plain folder of images")

    classes = [get_metric(name) for name in ev.metrics]
    need_maps = any("maps" in c.needs for c in classes)
    need_refs = any("refs" in c.needs for c in classes)
    items = collect_items(inputs, need_maps, need_refs)
    device = resolve_device(cfg.device)
    ctx = MetricContext(device=device, train_photos_dir=inputs.train_photos_dir,
                        cache_dir=Path(ev.cache_dir), progress=progress)

    metrics, seconds = [], {}
    for cls in classes:  # models load (and fail with how-to-get messages) before any scoring
        t0 = time.perf_counter()
        metrics.append(cls(cfg, ctx))
        seconds[cls.name] = time.perf_counter() - t0

    out = prepare_output_dir(out_dir)
    t_loop = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool, tqdm(
        total=len(items), desc="evaluate", unit="img", disable=not progress
    ) as bar:
        for start in range(0, len(items), ev.batch_size):
            chunk = items[start : start + ev.batch_size]
            decoded = list(pool.map(lambda it: _decode(it, need_maps, need_refs), chunk))
            batch = Batch(
                stems=[it.stem for it in chunk],
                generated=[d[0] for d in decoded],
                maps=[d[1] for d in decoded] if need_maps else None,
                refs=[d[2] for d in decoded] if need_refs else None,
            )
            for m in metrics:
                t0 = time.perf_counter()
                m.update(batch)
                seconds[m.name] += time.perf_counter() - t0
            bar.update(len(chunk))
    loop_seconds = time.perf_counter() - t_loop

    terms: dict[str, float] = {}
    per_image: dict[str, dict[str, float]] = {it.stem: {} for it in items}
    metric_info: dict[str, dict] = {}
    for m in metrics:
        t0 = time.perf_counter()
        res = m.result()
        seconds[m.name] += time.perf_counter() - t0
        terms[m.term] = res.value
        if res.per_image:
            for stem, v in res.per_image.items():
                per_image[stem][m.term] = v
        metric_info[m.name] = {"term": m.term, "value": res.value, **m.describe(),
                               "extra": res.extra, "seconds": round(seconds[m.name], 3)}

    parts = score_parts(terms, ev.fid_cap)
    missing_terms = [t for t in TERMS if t not in terms]
    stand_ins = [name for name, info in metric_info.items() if info["stand_in"]]
    warning = ""
    if stand_ins:
        warning = (
            "STAND-IN MODELS USED: the term(s) " + ", ".join(stand_ins) + " were computed with"
            " stand-ins, so this score is NOT comparable to the A board. "
            + " ".join(metric_info[n]["note"] for n in stand_ins)
        )
    total = time.perf_counter() - t_start
    scores = {
        "score": parts["score"] if parts else None,
        "score_note": "" if parts else f"no A-board score: terms {', '.join(missing_terms)} not computed"
        " (evaluate.metrics lacks them)",
        "formula": FORMULA.replace("100", f"{ev.fid_cap:g}") if ev.fid_cap != 100 else FORMULA,
        "stand_in": bool(stand_ins),
        "warning": warning,
        "terms": terms,
        "score_parts": parts,
        "counts": {
            "images": len(items),
            "maps": len(items) if need_maps else 0,
            "references": len({str(it.ref) for it in items}) if need_refs else 0,
            **({"train_photos": metric_info["fid"]["extra"]["train_statistics"]["count"]}
               if "fid" in metric_info else {}),
        },
        "metrics": metric_info,
        "inputs": {
            "generated": str(gen.resolve()),
            "generated_manifest": gen_manifest or "",
            "labels": str(inputs.labels_dir.resolve()) if inputs.labels_dir else "",
            "pairs": str(inputs.pairs_json.resolve()) if inputs.pairs_json else "",
            "refs": str(inputs.refs_dir.resolve()) if inputs.refs_dir else "",
            "train_photos": str(inputs.train_photos_dir.resolve()) if inputs.train_photos_dir else "",
            "data": str(inputs.data_dir.resolve()) if inputs.data_dir else "",
            "split": inputs.split or "",
        },
        "device": str(device),
        "config": config_to_dict(ev),
        "timing": {
            "seconds": round(total, 3),
            "scoring_loop_seconds": round(loop_seconds, 3),
            "images_per_second": round(len(items) / total, 3) if total > 0 else None,
        },
    }
    atomic_write_json(out / "scores.json", scores)
    atomic_write_text(out / "per_image.csv", per_image_csv(items, per_image))
    atomic_write_text(out / "report.html", build_report(scores, items, per_image, ev.report_rows))
    manifest_inputs = {"generated": gen_manifest} if gen_manifest else {}
    if inputs.data_dir and (inputs.data_dir / MANIFEST).is_file():
        manifest_inputs["data"] = manifest_hash(inputs.data_dir)
    write_manifest(
        out, "evaluate", config_hash=config_hash(cfg, "evaluate"), inputs=manifest_inputs,
        counts={"images": len(items)},
        extra={"score": scores["score"], "terms": terms, "stand_in": bool(stand_ins)},
    )
    return scores


def per_image_csv(items: list[Item], per_image: dict[str, dict[str, float]]) -> str:
    """CSV text: stem, generated file, then one column per per-image term (TERMS order)."""
    cols = [t for t in TERMS if any(t in v for v in per_image.values())]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["stem", "generated", *cols])
    for it in items:
        vals = per_image[it.stem]
        w.writerow([it.stem, it.generated.name, *(f"{vals[c]:.6f}" if c in vals else "" for c in cols)])
    return buf.getvalue()
