"""`landscape evaluate`: score a folder of generated images with the configured metrics, beside
the ceiling of every term.

`run_evaluate` checks every input first (the generated folder's manifest, the pairing, every
image and label map), then finds the ceiling (`ground_truth.resolve_ceiling`: the ground truth
scored through the same scorer, cached; the style oracle when given), scores the images
(`scoring`: each decoded once, every metric of `cfg.evaluate.metrics`), and only then opens
`--out` (`claim_folder`: its own folders only, locked) and writes `scores.json` (with the
"ceiling" block: generated / ceiling / ratio per term), `per_image.csv`, `report.html` and
`manifest.json` (stage "evaluate") last; a failed run leaves the previous scores as they were.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from pipeline.core.artifacts import (
    MANIFEST,
    StageResult,
    check_input_unchanged,
    check_replaceable,
    manifest_hash,
    read_manifest,
)
from pipeline.core.config import Config
from pipeline.core.errors import ArtifactError, DatasetError

from .ceiling import ceiling_block
from .ground_truth import CeilingChoice, resolve_ceiling
from .inputs import EvalInputs
from .outputs import evaluate_summary, write_evaluation
from .scoring import prepare_items, score_items

GENERATED_STAGES = ("generate", "style-oracle")  # folders of images this project makes


def run_evaluate(
    cfg: Config,
    inputs: EvalInputs,
    out: str | Path,
    *,
    progress: bool = True,
    allow_any_size: bool = False,
    ceiling: CeilingChoice | None = None,
    log: Callable[[str], None] = print,
) -> StageResult:
    """Score `inputs.generated_dir`; write scores.json, per_image.csv, report.html, manifest.json
    into `out`; return StageResult(the evaluate manifest, the lines the command prints).
    allow_any_size: score generated images of any size (foreign folders). ceiling: where the
    ceiling comes from (None: no ceiling looked for; the block says so).
    """
    t_start = time.perf_counter()
    out = Path(out)
    _check_out(out, inputs.generated_dir)
    gen_manifest, gen_stage = _generated_manifest(inputs, log)
    items = prepare_items(cfg, inputs, allow_any_size)
    t0 = time.perf_counter()
    parts = (resolve_ceiling(cfg, inputs, ceiling, progress=progress, log=log) if ceiling is not None
             else (None, None, None, "no ceiling looked for"))
    ceiling_seconds = time.perf_counter() - t0
    scores, per_image = score_items(cfg, inputs, items, progress=progress)
    scores["inputs"].update(generated_manifest=gen_manifest or "", generated_stage=gen_stage,
                            data_manifest=_data_manifest(inputs))
    scores["ceiling"] = ceiling_block(scores, *parts)
    scores["timing"].update(seconds=round(time.perf_counter() - t_start, 3),
                            ceiling_seconds=round(ceiling_seconds, 3))
    manifest_inputs = {"generated": gen_manifest} if gen_manifest else {}
    if scores["inputs"]["data_manifest"]:
        manifest_inputs["data"] = scores["inputs"]["data_manifest"]
    manifest = write_evaluation(out, cfg, scores, items, per_image, inputs=manifest_inputs)
    return StageResult(manifest, evaluate_summary(scores, out))


def _data_manifest(inputs: EvalInputs) -> str:
    if inputs.data_dir and (inputs.data_dir / MANIFEST).is_file():
        return manifest_hash(inputs.data_dir)
    return ""


def _check_out(out: Path, generated: Path) -> None:
    """Refuse at once (before any scoring) an --out this stage may not write."""
    check_replaceable(out, "evaluate")
    if generated.resolve() in (out.resolve(), *out.resolve().parents):
        raise ArtifactError(f"--out {out}: is inside the generated folder {generated}; "
                            "choose a folder of its own, e.g. artifacts/eval/<exp>/<split>")


def _generated_manifest(inputs: EvalInputs, log: Callable[[str], None]) -> tuple[str | None, str]:
    """(the generated folder's manifest hash, its stage): (None, "") for a plain folder of images;
    ArtifactError for a folder that is foreign, unfinished, tampered with, or older than `--data`."""
    gen = inputs.generated_dir
    if not gen.is_dir():
        raise DatasetError(f"--generated {gen}: folder not found")
    if not (gen / MANIFEST).is_file():
        log(f"note: {gen} has no manifest.json; scoring it as a plain folder of images")
        return None, ""
    made = read_manifest(gen, GENERATED_STAGES)
    if inputs.data_dir is not None:  # generated from an older preprocess of this data: stale
        check_input_unchanged(made, "data", inputs.data_dir, gen)
    return manifest_hash(gen), made["stage"]
