"""pipeline.core.timing: stage labels, the recorded wall time of a wrapped command, concurrent
appends, the per-run summary (up-to-date stages count 0), and the Makefile's demo wiring."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from pipeline.core import timing
from pipeline.core.timing import append_record, read_records, run_timed, stage_label, summary_lines


def test_stage_label_is_the_subcommand_and_its_split():
    assert stage_label(["landscape", "train", "--data", "d", "--out", "o"]) == "train"
    assert stage_label(["/v/bin/landscape", "-v", "generate", "--split", "val", "--out", "x"]) == "generate val"
    assert stage_label(["landscape", "evaluate", "--split=test"]) == "evaluate test"
    assert stage_label(["true"]) == "true"


def test_run_records_the_wall_time_and_passes_the_exit_status(tmp_path):
    f = tmp_path / "t.json"
    code = run_timed([sys.executable, "-c", "import time; time.sleep(0.3)"], f, "r1")
    assert code == 0
    code = run_timed([sys.executable, "-c", "import sys; sys.exit(3)", "--split", "val"], f, "r1")
    assert code == 3
    first, second = read_records(f)
    assert first["run_id"] == "r1" and 0.3 <= first["seconds"] < 5 and first["exit"] == 0
    assert second["exit"] == 3 and second["label"].endswith(" val")
    assert run_timed([str(tmp_path / "no-such-program")], f, "r1") == 127


def test_the_file_keeps_the_last_runs_only(tmp_path, monkeypatch):
    monkeypatch.setattr(timing, "KEEP_RUNS", 3)
    f = tmp_path / "t.json"
    for run in range(5):
        for label in ("a", "b"):
            append_record(f, {"run_id": str(run), "label": label, "seconds": 1.0})
    assert [r["run_id"] for r in read_records(f)] == ["2", "2", "3", "3", "4", "4"]
    f.write_text("not json")
    assert read_records(f) == []  # a damaged file never stops a stage
    append_record(f, {"run_id": "x", "label": "a", "seconds": 1.0})
    assert len(read_records(f)) == 1


def test_parallel_stages_each_get_their_record(tmp_path):
    f = tmp_path / "t.json"
    cmd = [sys.executable, "-m", "pipeline.core.timing", "run", "--file", str(f), "--run-id", "p", "--",
           sys.executable, "-c", "pass"]
    procs = [subprocess.Popen(cmd) for _ in range(6)]
    assert [p.wait() for p in procs] == [0] * 6
    assert len(read_records(f)) == 6


def test_summary_splits_one_run_and_counts_skipped_stages_zero():
    start = 1_700_000_000.0
    records = [
        {"run_id": str(start), "label": "preprocess", "start": start + 5, "seconds": 10.0, "exit": 0},
        {"run_id": str(start), "label": "train", "start": start + 20, "seconds": 60.0, "exit": 0},
        {"run_id": str(start), "label": "generate val", "start": start + 90, "seconds": 5.0, "exit": 1},
        {"run_id": "older", "label": "train", "start": 1.0, "seconds": 999.0, "exit": 0},
    ]
    lines = summary_lines(records, str(start), ["sample-data", "preprocess", "train"], now=start + 100)
    table = {ln[:26].strip(): ln[26:].split() for ln in lines[1:]}
    assert table["sample-data"][:2] == ["0.0", "0%"] and "(up to date)" in " ".join(table["sample-data"])
    assert table["preprocess"][:2] == ["10.0", "10%"]
    assert table["train"][:2] == ["60.0", "60%"]
    assert "(failed)" in " ".join(table["generate val"])
    assert table["stages"][:2] == ["75.0", "75%"]
    assert table["set-up, checks and make"][:2] == ["25.0", "25%"]
    assert table["whole run"][0] == "100.0"
    # a run id that is not a start time: no whole-run line
    assert not any("whole run" in ln for ln in summary_lines(records, "older", []))


def test_summary_command_prints_the_table(tmp_path, capsys):
    f = tmp_path / "t.json"
    f.write_text(json.dumps([{"run_id": "r", "label": "train", "start": 1.0, "seconds": 2.0, "exit": 0}]))
    assert timing.main(["summary", "--file", str(f), "--run-id", "r", "--expect", "train,package"]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "package" in out and "(up to date)" in out


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_demo_wraps_every_stage_and_prints_the_split(root, tmp_path):
    """`make -n demo`: each stage command of the chain goes through the timing wrapper under
    one run id, and the demo ends with the summary of that run id."""
    out = subprocess.run(["make", "-n", "--no-print-directory", "demo", f"A={tmp_path}/a"], cwd=root,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    commands = out.stdout.replace("\\\n", " ").splitlines()  # continuation lines joined
    stage_lines = [ln for ln in commands if "landscape " in ln and "timing" in ln]
    subcommands = {ln.split("landscape ", 1)[1].split()[0] for ln in stage_lines}
    assert subcommands >= {"sample-data", "preprocess", "fit-segformer", "train", "generate", "evaluate",
                           "package"}, out.stdout
    # jobs side by side: the stages beside training print no progress bars, training does
    side = [ln for ln in stage_lines if " fit-segformer " in ln or "--ground-truth" in ln]
    assert len(side) == 2 and all(ln.rstrip().endswith("--quiet") for ln in side), side
    assert not any(" train " in ln and "--quiet" in ln for ln in stage_lines)
    # the sample data is made beside Jittor's core compile, at a lower priority than it
    data = [ln for ln in stage_lines if " sample-data " in ln or " preprocess " in ln]
    assert len(data) == 2 and all(ln.startswith("nice -n 10 ") for ln in data), data
    assert "-j3" in out.stdout
    # one thread per process, but the last stage (the validation images' scores) gets the cores
    last = [ln for ln in stage_lines if " evaluate " in ln and "--ceiling" in ln]
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    assert len(last) == 1 and last[0].startswith(f"OMP_NUM_THREADS={cores} "), last
    assert not any(ln.startswith("OMP_NUM_THREADS") for ln in stage_lines if ln not in last)
    run_ids = {ln.split("--run-id ", 1)[1].split()[0] for ln in stage_lines}
    summary = [ln for ln in out.stdout.splitlines() if "pipeline.core.timing summary" in ln]
    assert len(run_ids) == 1 and len(summary) == 1 and run_ids.pop() in summary[0]


def test_the_ceilings_evaluate_is_its_own_stage():
    from pipeline.core.timing import stage_label

    assert stage_label(["landscape", "evaluate", "--ground-truth", "--split", "val"]) == "evaluate ground-truth"
    assert stage_label(["landscape", "evaluate", "--split", "val"]) == "evaluate val"


def test_stages_run_side_by_side_count_once_in_the_rest():
    """`make demo` runs stages side by side (-j2): the rest is the elapsed time not covered by
    any stage, and the covered wall time is printed beside the summed one."""
    assert timing.busy_seconds([(0, 10), (5, 20), (30, 35), (31, 32)]) == 25
    assert timing.busy_seconds([]) == 0
    start = 1_700_000_000.0
    records = [
        {"run_id": str(start), "label": "fit-segformer", "start": start + 10, "seconds": 50.0, "exit": 0},
        {"run_id": str(start), "label": "train", "start": start + 20, "seconds": 60.0, "exit": 0},
    ]
    lines = summary_lines(records, str(start), ["fit-segformer", "train"], now=start + 100)
    table = {ln[:26].strip(): ln[26:].split() for ln in lines[1:]}
    assert table["stages"][:2] == ["110.0", "110%"]
    assert table["stages, side by side once"][:2] == ["70.0", "70%"]
    assert table["set-up, checks and make"][:2] == ["30.0", "30%"]
    assert table["train"][2:4] == ["0.3", "min"]  # started 20 s into the run


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
@pytest.mark.parametrize("cores", [1, 2, 4])
def test_on_two_cores_the_packages_install_after_the_core_compile(root, tmp_path, cores):
    """`make -n` of a fresh venv's packages step: with <= 2 cores it first waits for Jittor's
    core compile (started in the background by the base step); with more they overlap."""
    venv = tmp_path / "venv"
    out = subprocess.run(["make", "-n", "--no-print-directory", f"VENV={venv}", f"SETUP_CORES={cores}",
                          f"{venv}/.packages"], cwd=root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    compile_started = next(i for i, ln in enumerate(lines) if "jittor-compile.log" in ln and "&" in ln)
    install = next(i for i, ln in enumerate(lines) if "nice -n 10" in ln and "pip install" in ln)
    waits = [i for i, ln in enumerate(lines) if "while [ ! -f" in ln and ".jittor-compiled" in ln]
    assert compile_started < install
    if cores <= 2:
        assert len(waits) == 1 and compile_started < waits[0] < install, out.stdout
    else:
        assert not waits, out.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
@pytest.mark.parametrize("dont_write", ["1", None])
def test_make_commands_keep_pythons_bytecode_cache(root, tmp_path, dont_write):
    """Where the environment sets PYTHONDONTWRITEBYTECODE, the project's commands write their
    bytecode under .cache/pycache (each process would otherwise compile PyTorch's modules
    again); elsewhere Python's own default is left alone."""
    show = tmp_path / "show.mk"
    show.write_text('show-py-env:\n\t@echo "[$${PYTHONDONTWRITEBYTECODE-unset}|$${PYTHONPYCACHEPREFIX-unset}]"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    if dont_write:
        env["PYTHONDONTWRITEBYTECODE"] = dont_write
    out = subprocess.run(["make", "--no-print-directory", "-f", "Makefile", "-f", str(show), "show-py-env"],
                         cwd=root, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    if dont_write:
        assert out.stdout.strip() == f"[|{root}/.cache/pycache]"
    else:
        assert out.stdout.strip() == "[unset|unset]"
