import json
import subprocess
import sys

import pytest

from pipeline.core.cli import main

from .conftest import write_flat_case, write_scene_folder

CHEAP = ["--set", 'evaluate.metrics=["mask-accuracy", "color-hist-corr", "aesthetic"]']


def _args(c, out, seg, tmp_path):
    return ["evaluate", "--generated", str(c["gen"]), "--labels", str(c["labels"]), "--pairs", str(c["pairs"]),
            "--refs", str(c["refs"]), "--out", str(out), "--quiet", "--device", "cpu", *CHEAP,
            "--set", f'evaluate.segformer="{seg}"', "--set", f'evaluate.clip="{tmp_path / "none"}"']


def test_evaluate_cli_scores_and_prints_the_stand_in_warning(tmp_path, capsys, tiny_segformer):
    seg, _ = tiny_segformer
    c = write_flat_case(tmp_path / "val")
    out = tmp_path / "eval"
    main(_args(c, out, seg, tmp_path))
    text = capsys.readouterr()
    assert "mask_accuracy  1.0000" in text.out and "[STAND-IN]" in text.out
    assert f"wrote {out}/scores.json" in text.out
    assert "STAND-IN MODELS USED" in text.err
    assert json.loads((out / "scores.json").read_text())["terms"]["mask_accuracy"] == 1.0


def test_evaluate_cli_allow_any_size(tmp_path, capsys, tiny_segformer):
    seg, _ = tiny_segformer
    c = write_flat_case(tmp_path / "small", size=(64, 48))
    out = tmp_path / "eval"
    with pytest.raises(SystemExit) as exc:
        main(_args(c, out, seg, tmp_path))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "map_000.jpg: 64x48 pixels, must be 512x384" in err and "--allow-any-size" in err
    assert "Traceback" not in err and not out.exists()
    main(_args(c, out, seg, tmp_path) + ["--allow-any-size"])
    assert json.loads((out / "scores.json").read_text())["counts"]["images"] == 4


def test_missing_model_is_one_red_line_and_exit_2(tmp_path, capsys):
    c = write_flat_case(tmp_path / "val")
    write_scene_folder(tmp_path / "train", 2)
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--generated", str(c["gen"]), "--labels", str(c["labels"]), "--pairs", str(c["pairs"]),
              "--refs", str(c["refs"]), "--train-photos", str(tmp_path / "train"), "--out", str(tmp_path / "o"),
              "--set", f'evaluate.segformer="{tmp_path / "nope"}"'])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "landscape fit-segformer" in err and "Traceback" not in err


def test_commands_module_loads_no_torch():
    """`landscape --help` stays instant: the evaluation commands import torch only when run."""
    code = ("import sys, evaluation.commands; bad = [m for m in ('torch', 'transformers', 'torch_fidelity')"
            " if m in sys.modules]; sys.exit(str(bad) if bad else 0)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ground_truth_cli_scores_once_then_reuses(tmp_path, capsys, sample_preprocessed, tiny_segformer):
    seg, _ = tiny_segformer
    args = ["evaluate", "--ground-truth", "--data", str(sample_preprocessed), "--out", str(tmp_path / "gt"),
            "--quiet", "--device", "cpu", *CHEAP, "--set", f'evaluate.segformer="{seg}"',
            "--set", f'evaluate.clip="{tmp_path / "none"}"', "--set", f'evaluate.cache_dir="{tmp_path / "c"}"']
    main(args)
    first = capsys.readouterr().out
    assert "photos scored" in first and "ceiling: this evaluation is the ground truth" in first
    main(args)
    assert "up to date" in capsys.readouterr().out
    scores = json.loads((tmp_path / "gt" / "scores.json").read_text())
    assert scores["ground_truth"]["split"] == "val" and scores["inputs"]["generated_stage"] == "ground-truth"


@pytest.mark.parametrize("extra, message", [
    (["--generated", "x"], "--ground-truth takes --data DIR"),
    ([], "--ground-truth takes --data DIR"),
])
def test_ground_truth_cli_usage_errors(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--ground-truth", *extra])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_evaluate_cli_needs_generated_and_out(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--out", "x"])
    assert exc.value.code == 2 and "needs --generated DIR and --out DIR" in capsys.readouterr().err
