"""tools/conv_layers.py: the per-layer direct vs Winograd timings behind ops.winograd_passes."""

from __future__ import annotations

import json

from pipeline.jt_env import setup_jittor

jt = setup_jittor("cpu")

from pipeline.model import ops  # noqa: E402
from tools import conv_layers  # noqa: E402


def test_tiny_step_layers_are_recorded_timed_and_summed(tmp_path, capsys):
    out = tmp_path / "layers.json"
    assert conv_layers.main(["--which", "tiny", "--calls", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3x3 stride-1 layers of one tiny step" in text and "step total over these layers" in text
    result = json.loads(out.read_text())
    layers = result["layers"]
    assert layers and all(r["w"][2:] == [3, 3] and r["calls"] >= 1 for r in layers)
    for r in layers:
        assert len(r["direct_ms"]) == len(r["winograd_ms"]) == 3 and min(r["direct_ms"] + r["winograd_ms"]) > 0
        assert r["rule"] == list(ops.winograd_passes(r["x"], r["w"], r["args"][:2], r["args"][2:]))
    t = result["totals_ms"]
    direct = sum(r["calls"] * sum(r["direct_ms"]) for r in layers)
    assert abs(t["direct"] - direct) < 0.01 + 1e-6 * direct
    assert t["best"] <= min(t["direct"], t["winograd"], t["rule"]) + 0.01


def test_record_layers_counts_the_calls_of_a_step():
    class Side:
        def step(self):
            x = jt.ones((1, 16, 8, 8))
            w = jt.ones((4, 16, 3, 3))
            ops.conv2d(x, w, padding=1).sync()
            ops.conv2d(x, w, padding=1).sync()
            ops.conv2d(x, jt.ones((4, 16, 4, 4)), stride=2, padding=1).sync()

    seen = conv_layers.record_layers(Side(), ops)
    assert seen == {((1, 16, 8, 8), (4, 16, 3, 3), (1, 1, 1, 1)): 2,
                    ((1, 16, 8, 8), (4, 16, 4, 4), (2, 2, 1, 1)): 1}


def test_bad_arguments_are_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "theirs.txt").write_text("keep")
    for argv in (["--which", "nope"], ["--calls", "0"], ["--threads", "0"], ["--json", str(tmp_path)]):
        try:
            conv_layers.main(argv)
        except SystemExit as exc:
            assert exc.code == 2
        else:
            raise AssertionError(f"{argv} was accepted")
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and "--threads and --calls: give 1 or more" in err
    assert f"--json {tmp_path}: a folder; give a file path" in err
    assert [p.name for p in tmp_path.iterdir()] == ["theirs.txt"]
