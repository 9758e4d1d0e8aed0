"""The scorer, without any output folder: what `evaluate`, the ground truth (the ceiling) and the
style ceiling all run, so every number they compare comes from the same code.

    items = prepare_items(cfg, inputs, allow_any_size)       # every input checked, nothing scored
    scores, per_image = score_items(cfg, inputs, items)       # the scores.json record (no "ceiling")

Each image (and its label map and style reference, when a metric needs them) is decoded once (the
check's decode is kept for scoring: `inputs.check_items`, `Decoder`) and handed to every metric
of `cfg.evaluate.metrics` (or of `metric_names`). No per-metric branches: metrics come from the
registry.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline.core.config import Config, config_to_dict
from pipeline.core.imageio import load_label, load_photo

from .device import resolve_device
from .inputs import EvalInputs, Item, check_items, collect_items, reference_photos
from .registry import TERMS, Batch, Metric, MetricContext, get_metric
from .score import score_parts

FORMULA = "A = mask_acc * (aesthetic*0.2 + (style*0.5+0.5)*0.3 + (100-min(FID,100))/100*0.5)"


def metric_classes(cfg: Config, metric_names: list[str] | None = None) -> list[type[Metric]]:
    """The registered classes of `metric_names` (default: cfg.evaluate.metrics)."""
    return [get_metric(name) for name in (metric_names or cfg.evaluate.metrics)]


def _needs(classes, what: str) -> bool:
    return any(what in c.needs for c in classes)


def prepare_items(cfg: Config, inputs: EvalInputs, allow_any_size: bool = False,
                  metric_names: list[str] | None = None) -> list[Item]:
    """Every item to score, each input decoded and checked (DatasetError naming every bad file)."""
    classes = metric_classes(cfg, metric_names)
    items = collect_items(inputs, _needs(classes, "maps"), _needs(classes, "refs"))
    check_items(items, _needs(classes, "maps"), allow_any_size)
    return items


def load_metrics(classes: list[type[Metric]], cfg: Config, ctx: MetricContext) -> tuple[list[Metric], dict]:
    """Instantiate every metric (models load, and fail with how-to-get messages, before any
    scoring); return (metrics, {name: seconds spent so far})."""
    metrics, seconds = [], {}
    for cls in classes:
        t0 = time.perf_counter()
        metrics.append(cls(cfg, ctx))
        seconds[cls.name] = time.perf_counter() - t0
    return metrics, seconds


class Decoder:
    """Each file's array, decoded once: the generated image and label map from `check_items`
    (`item.decoded`, popped when used) or decoded now; each style reference decoded on first use
    and kept only until the last item that uses it. `decodes` counts the files decoded here."""

    def __init__(self, items: list[Item], maps: bool, refs: bool):
        self.maps, self.refs, self.decodes = maps, refs, 0
        self.ref_uses = Counter(it.ref for it in items) if refs else Counter()
        self.ref_arrays: dict[Path, np.ndarray] = {}

    @staticmethod
    def _get(item: Item, key: str, path: Path, load) -> np.ndarray:
        arr = item.decoded.pop(key, None)
        return load(path) if arr is None else arr

    def batch(self, chunk: list[Item], pool: ThreadPoolExecutor) -> Batch:
        self.decodes += sum(("generated" not in it.decoded) + (self.maps and "map" not in it.decoded)
                            for it in chunk)
        new_refs = list(dict.fromkeys(it.ref for it in chunk if self.refs and it.ref not in self.ref_arrays))
        ref_jobs = [pool.submit(load_photo, p) for p in new_refs]
        arrays = list(pool.map(lambda it: (self._get(it, "generated", it.generated, load_photo),
                                           self._get(it, "map", it.map, load_label) if self.maps else None),
                               chunk))
        for p, job in zip(new_refs, ref_jobs):
            self.ref_arrays[p] = job.result()
            self.decodes += 1
        refs = [self._take_ref(it.ref) for it in chunk] if self.refs else None
        return Batch(stems=[it.stem for it in chunk], generated=[a[0] for a in arrays],
                     maps=[a[1] for a in arrays] if self.maps else None, refs=refs)

    def _take_ref(self, path: Path) -> np.ndarray:
        arr = self.ref_arrays[path]
        self.ref_uses[path] -= 1
        if self.ref_uses[path] == 0:
            del self.ref_arrays[path]
        return arr


def feed_metrics(items: list[Item], metrics: list[Metric], seconds: dict, batch_size: int,
                 progress: bool) -> Decoder:
    """Hand each batch (every file decoded once: `Decoder`) to every metric; adds each metric's
    time to `seconds`; returns the decoder (its count of files decoded while scoring)."""
    decoder = Decoder(items, any("maps" in m.needs for m in metrics), any("refs" in m.needs for m in metrics))
    with ThreadPoolExecutor(max_workers=2) as pool, tqdm(
        total=len(items), desc="evaluate", unit="img", disable=not progress
    ) as bar:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            batch = decoder.batch(chunk, pool)
            for m in metrics:
                t0 = time.perf_counter()
                m.update(batch)
                seconds[m.name] += time.perf_counter() - t0
            bar.update(len(chunk))
    return decoder


def metric_results(metrics: list[Metric], seconds: dict, items: list[Item]) -> tuple[dict, dict, dict]:
    """(terms {term: value, informative terms included}, per_image {stem: {term: value}},
    metric_info {name: description})."""
    terms: dict[str, float] = {}
    per_image: dict[str, dict[str, float]] = {it.stem: {} for it in items}
    info: dict[str, dict] = {}
    for m in metrics:
        t0 = time.perf_counter()
        res = m.result()
        seconds[m.name] += time.perf_counter() - t0
        terms[m.term] = res.value
        terms.update(res.informative)
        for stem, v in (res.per_image or {}).items():
            per_image[stem][m.term] = v
        info[m.name] = {"term": m.term, "value": res.value, "informative": res.informative, **m.describe(),
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
                  device: str) -> dict:
    """What scores.json holds (without "timing" and "ceiling", which the callers add)."""
    ev = cfg.evaluate
    parts = score_parts(terms, ev.fid_cap)
    missing = [t for t in TERMS if t not in terms]
    warning = _stand_in_warning(metric_info)
    counts = {"images": len(items), "maps": sum(it.map is not None for it in items),
              "references": len({str(it.ref) for it in items if it.ref is not None})}
    reference = next((i["extra"]["reference_set"] for i in metric_info.values()
                      if "reference_set" in i["extra"]), None)
    if reference is not None:
        counts["train_photos"] = reference["count"]
    return {
        "score": parts["score"] if parts else None,
        "score_note": "" if parts else f"no A-board score: terms {', '.join(missing)} not computed"
        " (evaluate.metrics lacks them)",
        "formula": FORMULA.replace("100", f"{ev.fid_cap:g}") if ev.fid_cap != 100 else FORMULA,
        "stand_in": bool(warning), "warning": warning, "terms": terms, "score_parts": parts,
        "counts": counts, "reference_set": reference, "metrics": metric_info,
        "inputs": {"generated": _path(inputs.generated_dir), "generated_manifest": "", "generated_stage": "",
                   "labels": _path(inputs.labels_dir), "pairs": _path(inputs.pairs_json),
                   "refs": _path(inputs.refs_dir), "train_photos": _path(inputs.train_photos_dir),
                   "data": _path(inputs.data_dir), "split": inputs.split or ""},
        "device": device, "config": config_to_dict(ev),
    }


def metric_context(cfg: Config, inputs: EvalInputs, items: list[Item], classes, progress: bool) -> MetricContext:
    """The metrics' context; the FID/KID reference set only when a metric needs it."""
    ctx = MetricContext(device=resolve_device(cfg.device), train_photos_dir=inputs.train_photos_dir,
                        cache_dir=Path(cfg.evaluate.cache_dir), progress=progress)
    if _needs(classes, "reference") and inputs.train_photos_dir is not None:
        ctx.reference_photos, ctx.reference_info = reference_photos(inputs, [it.stem for it in items])
    return ctx


def score_items(cfg: Config, inputs: EvalInputs, items: list[Item], *, progress: bool = True,
                metric_names: list[str] | None = None) -> tuple[dict, dict[str, dict[str, float]]]:
    """Score checked `items` (`prepare_items`) with every metric; return (the scores.json record
    with "timing", per_image {stem: {term: value}})."""
    t_start = time.perf_counter()
    classes = metric_classes(cfg, metric_names)
    torch.manual_seed(cfg.seed)
    ctx = metric_context(cfg, inputs, items, classes, progress)
    metrics, seconds = load_metrics(classes, cfg, ctx)
    t_loop = time.perf_counter()
    feed_metrics(items, metrics, seconds, cfg.evaluate.batch_size, progress)
    loop_seconds = time.perf_counter() - t_loop
    terms, per_image, metric_info = metric_results(metrics, seconds, items)
    scores = scores_record(cfg, inputs, items, terms, metric_info, str(ctx.device))
    total = time.perf_counter() - t_start
    scores["timing"] = {"seconds": round(total, 3), "scoring_loop_seconds": round(loop_seconds, 3),
                        "images_per_second": round(len(items) / total, 3) if total > 0 else None}
    return scores, per_image
