import json

import pytest

from pipeline.cli import main

from .conftest import write_flat_case, write_scene_folder


def test_evaluate_cli_scores_and_prints_the_stand_in_warning(tmp_path, capsys, tiny_segformer):
    seg, _ = tiny_segformer
    c = write_flat_case(tmp_path / "val")
    out = tmp_path / "eval"
    main(["evaluate", "--generated", str(c["gen"]), "--labels", str(c["labels"]), "--pairs", str(c["pairs"]),
          "--refs", str(c["refs"]), "--out", str(out), "--quiet", "--device", "cpu",
          "--set", 'evaluate.metrics=["mask-accuracy", "color-hist-corr", "aesthetic"]',
          "--set", f'evaluate.segformer="{seg}"', "--set", f'evaluate.clip="{tmp_path / "none"}"'])
    text = capsys.readouterr()
    assert "mask_accuracy  1.0000" in text.out and "[STAND-IN]" in text.out
    assert "STAND-IN MODELS USED" in text.err
    assert json.loads((out / "scores.json").read_text())["terms"]["mask_accuracy"] == 1.0


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
