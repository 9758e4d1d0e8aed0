"""`landscape evaluate`: score a folder of generated images with the configured metrics.

`run_evaluate` checks every input first (the generated folder's manifest, the pairing, every
image and label map), loads the metrics' models, decodes each image (and its label map and style
reference, when a metric needs them) once and hands every batch to every metric of
`cfg.evaluate.metrics`. Only then does it open `--out` (`claim_folder`: its own folders only,
locked) and write `scores.json`, `per_image.csv`, `report.html` and `manifest.json` (stage
"evaluate") last; a failed run leaves the previous scores as they were. No per-metric branches
here: metrics come from the registry.
"""

from __future__ import annotations

import csv
import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from pipeline.core.artifacts import (
    MANIFEST,
    StageResult,
    atomic_write_json,
    atomic_write_text,
    check_input_unchanged,
    check_replaceable,
    claim_folder,
    manifest_hash,
    read_manifest,
    write_manifest,
)
from pipeline.core.config import Config, config_hash, config_to_dict
from pipeline.core.errors import ArtifactError, DatasetError
from pipeline.core.imageio import load_label, load_photo

from .device import resolve_device
from .inputs import EvalInputs, Item, check_items, collect_items
from .registry import TERMS, Batch, Metric, MetricContext, get_metric
from .report import build_report
from .score import score_parts
from .summary import summary_lines

FORMULA = "A = mask_acc * (aesthetic*0.2 + (style*0.5+0.5)*0.3 + (100-min(FID,100))/100*0.5)"


def run_evaluate(
    cfg: Config,
    inputs: EvalInputs,
    out: str | Path,
    *,
    progress: bool = True,
    allow_any_size: bool = False,
    log: Callable[[str], None] = print,
) -> StageResult:
    """Score `inputs.generated_dir`; write scores.json, per_image.csv, report.html, manifest.json
    into `out`; return StageResult(the evaluate manifest, the lines the command prints).
    allow_any_size: score generated images of any size (foreign folders).
    """
    t_start = time.perf_counter()
    out = Path(out)
    _check_out(out, inputs.generated_dir)
    gen_manifest = _generated_manifest(inputs, log)
    classes = [get_metric(name) for name in cfg.evaluate.metrics]
    need_maps = any("maps" in c.needs for c in classes)
    need_refs = any("refs" in c.needs for c in classes)
    items = collect_items(inputs, need_maps, need_refs)
    check_items(items, need_maps, allow_any_size)
    torch.manual_seed(cfg.seed)
    ctx = MetricContext(device=resolve_device(cfg.device), train_photos_dir=inputs.train_photos_dir,
                        cache_dir=Path(cfg.evaluate.cache_dir), progress=progress)
    metrics, seconds = load_metrics(classes, cfg, ctx)
    t_loop = time.perf_counter()
    score_items(items, metrics, seconds, cfg.evaluate.batch_size, progress)
    loop_seconds = time.perf_counter() - t_loop
    terms, per_image, metric_info = metric_results(metrics, seconds, items)
    scores = scores_record(cfg, inputs, items, terms, metric_info, str(ctx.device), gen_manifest)
    total = time.perf_counter() - t_start
    scores["timing"] = {"seconds": round(total, 3), "scoring_loop_seconds": round(loop_seconds, 3),
                        "images_per_second": round(len(items) / total, 3) if total > 0 else None}
    texts = {"per_image.csv": per_image_csv(items, per_image),
             "report.html": build_report(scores, items, per_image, cfg.evaluate.report_rows)}
    with claim_folder(out, "evaluate") as folder:  # every input checked: only now touch --out
        manifest = write_outputs(folder, cfg, inputs, scores, texts, gen_manifest)
    return StageResult(manifest, evaluate_summary(scores, out))


def _check_out(out: Path, generated: Path) -> None:
    """Refuse at once (before any scoring) an --out this stage may not write."""
    check_replaceable(out, "evaluate")
    if generated.resolve() in (out.resolve(), *out.resolve().parents):
        raise ArtifactError(f"--out {out}: is inside the generated folder {generated}; "
                            "choose a folder of its own, e.g. artifacts/eval/<exp>/<split>")


def _generated_manifest(inputs: EvalInputs, log: Callable[[str], None]) -> str | None:
    """The generated folder's manifest hash (None for a plain folder of images); ArtifactError
    for a folder that is foreign, unfinished, tampered with, or older than `--data`."""
    gen = inputs.generated_dir
    if not gen.is_dir():
        raise DatasetError(f"--generated {gen}: folder not found")
    if not (gen / MANIFEST).is_file():
        log(f"note: {gen} has no manifest.json; scoring it as a plain folder of images")
        return None
    made = read_manifest(gen, "generate")
    if inputs.data_dir is not None:  # generated from an older preprocess of this data: stale
        check_input_unchanged(made, "data", inputs.data_dir, gen)
    return manifest_hash(gen)


def load_metrics(classes: list[type[Metric]], cfg: Config, ctx: MetricContext) -> tuple[list[Metric], dict]:
    """Instantiate every metric (models load, and fail with how-to-get messages, before any
    scoring); return (metrics, {name: seconds spent so far})."""
    metrics, seconds = [], {}
    for cls in classes:
        t0 = time.perf_counter()
        metrics.append(cls(cfg, ctx))
        seconds[cls.name] = time.perf_counter() - t0
    return metrics, seconds


def _decode(item: Item, maps: bool, refs: bool):
    return (load_photo(item.generated), load_label(item.map) if maps else None,
            load_photo(item.ref) if refs else None)


def score_items(items: list[Item], metrics: list[Metric], seconds: dict, batch_size: int, progress: bool) -> None:
    """Decode each item once (two threads) and feed every batch to every metric; adds each
    metric's time to `seconds`."""
    maps = any("maps" in m.needs for m in metrics)
    refs = any("refs" in m.needs for m in metrics)
    with ThreadPoolExecutor(max_workers=2) as pool, tqdm(
        total=len(items), desc="evaluate", unit="img", disable=not progress
    ) as bar:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            decoded = list(pool.map(lambda it: _decode(it, maps, refs), chunk))
            batch = Batch(stems=[it.stem for it in chunk], generated=[d[0] for d in decoded],
                          maps=[d[1] for d in decoded] if maps else None,
                          refs=[d[2] for d in decoded] if refs else None)
            for m in metrics:
                t0 = time.perf_counter()
                m.update(batch)
                seconds[m.name] += time.perf_counter() - t0
            bar.update(len(chunk))


def metric_results(metrics: list[Metric], seconds: dict, items: list[Item]) -> tuple[dict, dict, dict]:
    """(terms {term: value}, per_image {stem: {term: value}}, metric_info {name: description})."""
    terms: dict[str, float] = {}
    per_image: dict[str, dict[str, float]] = {it.stem: {} for it in items}
    info: dict[str, dict] = {}
    for m in metrics:
        t0 = time.perf_counter()
        res = m.result()
        seconds[m.name] += time.perf_counter() - t0
        terms[m.term] = res.value
        for stem, v in (res.per_image or {}).items():
            per_image[stem][m.term] = v
        info[m.name] = {"term": m.term, "value": res.value, **m.describe(),
                        "extra": res.extra, "seconds": round(seconds[m.name], 3)}
    return terms, per_image, info


def _stand_in_warning(metric_info: dict) -> str:
    stand_ins = [name for name, info in metric_info.items() if info["stand_in"]]
    if not stand_ins:
        return ""
    return ("STAND-IN MODELS USED: the term(s) " + ", ".join(stand_ins) + " were computed with"
            " stand-ins, so this score is NOT comparable to the A board. "
            + " ".join(metric_info[n]["note"] for n in stand_ins))


def _path(p: Path | None) -> str:
    return str(p.resolve()) if p else ""


def scores_record(cfg: Config, inputs: EvalInputs, items: list[Item], terms: dict, metric_info: dict,
                  device: str, gen_manifest: str | None) -> dict:
    """What scores.json holds (without "timing", which the caller adds last)."""
    ev = cfg.evaluate
    parts = score_parts(terms, ev.fid_cap)
    missing = [t for t in TERMS if t not in terms]
    warning = _stand_in_warning(metric_info)
    counts = {"images": len(items), "maps": sum(it.map is not None for it in items),
              "references": len({str(it.ref) for it in items if it.ref is not None})}
    if "fid" in metric_info:
        counts["train_photos"] = metric_info["fid"]["extra"]["train_statistics"]["count"]
    return {
        "score": parts["score"] if parts else None,
        "score_note": "" if parts else f"no A-board score: terms {', '.join(missing)} not computed"
        " (evaluate.metrics lacks them)",
        "formula": FORMULA.replace("100", f"{ev.fid_cap:g}") if ev.fid_cap != 100 else FORMULA,
        "stand_in": bool(warning), "warning": warning, "terms": terms, "score_parts": parts,
        "counts": counts, "metrics": metric_info,
        "inputs": {"generated": _path(inputs.generated_dir), "generated_manifest": gen_manifest or "",
                   "labels": _path(inputs.labels_dir), "pairs": _path(inputs.pairs_json),
                   "refs": _path(inputs.refs_dir), "train_photos": _path(inputs.train_photos_dir),
                   "data": _path(inputs.data_dir), "split": inputs.split or ""},
        "device": device, "config": config_to_dict(ev),
    }


def write_outputs(folder: Path, cfg: Config, inputs: EvalInputs, scores: dict, texts: dict[str, str],
                  gen_manifest: str | None) -> dict:
    """Write scores.json and `texts` {file name: text}, then the manifest (last); return it."""
    atomic_write_json(folder / "scores.json", scores)
    for name, text in texts.items():
        atomic_write_text(folder / name, text)
    manifest_inputs = {"generated": gen_manifest} if gen_manifest else {}
    if inputs.data_dir and (inputs.data_dir / MANIFEST).is_file():
        manifest_inputs["data"] = manifest_hash(inputs.data_dir)
    return write_manifest(
        folder, "evaluate", config_hash=config_hash(cfg, "evaluate"), inputs=manifest_inputs,
        counts={"images": scores["counts"]["images"]},
        extra={"score": scores["score"], "terms": scores["terms"], "stand_in": scores["stand_in"]},
    )


def evaluate_summary(scores: dict, out: Path) -> list[str]:
    """The lines `landscape evaluate` prints: the score table, the stand-in warning, the files."""
    lines = summary_lines(scores)
    if scores["warning"]:
        lines.append(f"warning: {scores['warning']}")
    lines.append(f"wrote {out}/scores.json, per_image.csv, report.html")
    return lines


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
