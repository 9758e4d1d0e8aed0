"""`make gpu-check` (tools/gpu_check.py): its pure parts, the whole script on a CPU at toy sizes,
and the `gpu` tests it runs first on a CUDA machine (skipped where no GPU is visible)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.checkpoint import list_checkpoints, read_checkpoint
from pipeline.train import run_train

from .model_testutil import NO_STYLE, tiny_config

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_steady_step_time_leaves_out_the_first_window():
    rows = [{"step": "5", "seconds": "40.0"}, {"step": "10", "seconds": "41.0"},
            {"step": "15", "seconds": "42.5"}]
    assert _tool().steady_step_seconds(rows) == (40.0, 0.25)  # (42.5 - 40) / (15 - 5)
    with pytest.raises(ValueError):
        _tool().steady_step_seconds(rows[:1])


def test_table_has_a_line_per_stage_and_dashes_for_nothing():
    rows = [{"stage": "train", "status": "ok", "seconds": 12.5, "rate": "3.00 images/s",
             "gpu_mib": 2048, "host_mib": 900, "note": "0.3 s/step"},
            {"stage": "evaluate", "status": "skipped", "seconds": None, "rate": None,
             "gpu_mib": None, "host_mib": None, "note": "over the 480 s budget"}]
    lines = _tool().table(rows).splitlines()
    assert lines[0].split()[:4] == ["stage", "status", "seconds", "throughput"]
    assert lines[1].split() == ["train", "ok", "12.5", "3.00", "images/s", "2048", "900", "0.3", "s/step"]
    assert lines[2].split()[:5] == ["evaluate", "skipped", "-", "-", "-"]


def test_a_failed_stage_keeps_its_whole_output_beside_the_report(tmp_path):
    tool = _tool()
    args = tool._parse(["--device", "cpu", "--tiny", "--out", str(tmp_path / "r.json")])
    check = tool.Check(args, tmp_path)
    code = "import sys; print('first line'); print('x' * 6000); sys.exit(3)"
    assert check.stage("gpu tests", [[sys.executable, "-c", code]]) is None
    row = check.rows[-1]
    assert row["status"] == "FAILED (exit 3)" and row["note"] == "x" * 200
    log = Path(row["log"])
    assert log == tmp_path / "r_logs" / "gpu_tests.log"
    assert "first line" in log.read_text() and log.read_text().startswith("$ ")  # not just the tail
    assert f"whole output: {log}" in tool.table(check.rows)


@pytest.mark.slow
def test_gpu_check_runs_on_a_cpu_at_toy_sizes(tmp_path):
    """Every stage of the GPU check, on this CPU: its table and json."""
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "tools/gpu_check.py", "--device", "cpu", "--tiny", "--out", str(out),
         "--work", str(tmp_path / "work"), "--tests", "tests/pipeline/test_gpu_check.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {r["stage"]: r for r in report["rows"]}
    assert list(rows) == ["jittor", "data", "train", "generate", "scorers", "evaluate", "gpu tests"]
    assert all(r["status"] == "ok" and r["seconds"] > 0 for r in rows.values()), report["rows"]
    assert rows["jittor"]["note"].endswith(" cpu")  # 'jittor 1.3.11.0 cpu'
    assert "s/step steady" in rows["train"]["note"] and rows["train"]["rate"].endswith("images/s")
    assert len(list((tmp_path / "work" / "generated").glob("*.jpg"))) == 4
    assert set(rows["evaluate"]["per_term_seconds"]) == {"mask-accuracy", "color-hist-corr", "aesthetic"}
    assert rows["scorers"]["note"].startswith("random weights")
    assert "all stages passed" in done.stdout and "evaluate" in done.stdout


def test_gpu_check_without_a_gpu_says_how_to_try_it_on_a_cpu(tmp_path):
    if _tool().gpu_memory_used() is not None:
        pytest.skip("a GPU is visible")
    done = subprocess.run([sys.executable, "tools/gpu_check.py", "--out", str(tmp_path / "r.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--device cpu --tiny" in done.stderr


# ---------------------------------------------------------------------------- gpu tests
@pytest.mark.gpu
@pytest.mark.slow
def test_cuda_training_step_agrees_with_cpu(sample_preprocessed, tmp_path):
    """One training step from the same initial weights on CUDA and on the CPU: the same losses
    and gradients (Adam's first moments, beta1 = 0) up to float32 kernel differences."""
    runs = {}
    # CUDA first: Jittor is imported once per process, and one imported for the CPU (nvcc_path
    # emptied) cannot switch to CUDA, while one imported for CUDA also runs on the CPU
    for device in ("cuda", "cpu"):
        cfg = tiny_config("train.max_steps=1", f'device="{device}"', "model.use_vae=false",
                          "model.hint_dropout=0.0", *NO_STYLE)
        result = run_train(cfg, sample_preprocessed, tmp_path / device, progress=False)
        runs[device] = (read_checkpoint(list_checkpoints(tmp_path / device)[-1][1])[0],
                        result.manifest["extra"]["last_losses"])
    (cpu, cpu_losses), (gpu, gpu_losses) = runs["cpu"], runs["cuda"]
    assert sorted(cpu_losses) == sorted(gpu_losses)
    for name in cpu_losses:
        assert gpu_losses[name] == pytest.approx(cpu_losses[name], rel=1e-3, abs=1e-4), name
    for key in (k for k in cpu if ".m." in k):
        assert np.isfinite(gpu[key]).all(), key
        np.testing.assert_allclose(gpu[key], cpu[key], rtol=1e-2, atol=1e-3, err_msg=key)
