"""tools/step_bench.py (`make bench`'s Jittor vs PyTorch step) and its mirror tools/torch_mirror.py.

The mirror is checked against the project's real Jittor networks in worker processes (never both
frameworks in this one): same state-dict keys and shapes at the demo and the halved base setting,
same outputs on the same weights at the toy size; the lockstep loop with fake workers."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from tools import step_bench as sb


def _state_of(name: str) -> tuple[dict, dict]:
    """(jittor, torch) state shapes of a setting, from the two workers' first replies."""
    workers = [sb.Worker("jittor", name, 1), sb.Worker("torch", name, 1)]
    try:
        replies = [w.read() for w in workers]
    finally:
        for w in workers:
            w.close()
    assert not replies[0]["torch_loaded"] and not replies[1]["jittor_loaded"]
    return replies[0]["state"], replies[1]["state"]


@pytest.mark.parametrize("name", ["demo", "half", "half-recipe"])
def test_mirror_has_the_project_networks_parameters(name):
    jittor, torch = _state_of(name)
    params = sb.compare_state(jittor, torch)  # raises on any differing key or shape
    cfg = sb.setting_config(name, 1)
    # the generator's first stage is ngf * max_mult wide: the setting's widths reached the model
    widths0 = cfg.model.ngf * min(cfg.model.max_mult, 2 ** cfg.model.num_up)
    assert jittor["generator.blocks.0.conv_0.weight"] == [widths0, widths0, 3, 3]
    assert params == sum(math.prod(s) for k, s in torch.items()
                         if not k.startswith("ema_") and not k.endswith("_u"))
    assert params > (100_000 if name == "demo" else 1_000_000)


def test_compare_state_names_the_differences():
    a = {"generator.fc.weight": [4, 2], "discriminator.x.weight_u": [3]}
    assert sb.compare_state(a, dict(a)) == 8  # the spectral-norm vector is not a parameter
    with pytest.raises(RuntimeError, match="generator.fc.weight"):
        sb.compare_state(a, {**a, "generator.fc.weight": [4, 3]})
    with pytest.raises(RuntimeError, match="encoder.extra"):
        sb.compare_state(a, {**a, "encoder.extra": [1]})


def test_a_model_key_neither_mirrored_nor_pinned_is_refused(monkeypatch):
    cfg = sb.setting_config("tiny", 1)
    assert sb.unmirrored_keys(cfg) == []
    monkeypatch.setattr(sb, "PINNED", [p for p in sb.PINNED if not p.startswith("loss.colour_hist=")])
    assert sb.unmirrored_keys(cfg) == ["loss.colour_hist"]
    monkeypatch.setattr(sb, "MIRRORED_MODEL_KEYS", sb.MIRRORED_MODEL_KEYS - {"ngf"})
    assert "model.ngf" in sb.unmirrored_keys(dataclasses.replace(cfg))


class FakeWorker:
    """A worker whose step times are given; records the order of the calls."""

    def __init__(self, label, times, log):
        self.label, self.times, self.log = label, list(times), log

    def ask(self, cmd):
        self.log.append(self.label)
        return {"s": self.times.pop(0)}


def test_lockstep_alternates_and_waits_until_both_are_steady():
    log = []
    j = FakeWorker("jittor", [9.0, 1.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], log)
    t = FakeWorker("torch", [3.0, 2.0, 2.0, 2.6, 2.0, 2.0, 2.0, 2.0, 2.0], log)
    r = sb.lockstep([j, t], steps=2, max_rounds=20, max_seconds=100)
    # jittor is steady after round 5 (1.0 x 3), torch only after round 7 (2.0 x 3 after the 2.6)
    assert r["steady"] and r["warmup_rounds"] == 7
    assert log[:4] == ["jittor", "torch", "torch", "jittor"]
    assert r["jittor_s"] == 1.0 and r["torch_s"] == 2.0 and len(r["jittor_all_s"]) == 9


def test_lockstep_gives_up_after_max_rounds_and_leaves_out_the_first_step():
    log = []
    j = FakeWorker("jittor", [50.0, 1.0, 2.0, 1.0, 2.0], log)
    t = FakeWorker("torch", [1.0] * 5, log)
    r = sb.lockstep([j, t], steps=1, max_rounds=4, max_seconds=100)
    assert not r["steady"] and r["warmup_rounds"] == 4
    assert r["jittor_s"] == 1.5 and r["jittor_spread"] == 1.0  # 50 s (compilation) not in the window


def test_lockstep_rotates_three_workers():
    log = []
    workers = [FakeWorker(k, [1.0] * 4, log) for k in ("jittor", "torch", "jittor_proposed")]
    r = sb.lockstep(workers, steps=1, max_rounds=3, max_seconds=100)
    assert log[:6] == ["jittor", "torch", "jittor_proposed", "torch", "jittor_proposed", "jittor"]
    assert r["jittor_proposed_s"] == 1.0 and r["warmup_rounds"] == 3


def test_verdicts_take_the_worst_thread_setting():
    rows = [{"setting": "demo", "threads": 1, "ratio": 0.8}, {"setting": "demo", "threads": 2, "ratio": 0.95}]
    (line,) = sb.verdicts(rows)
    assert "0.80x at 1 thread(s), 0.95x at 2 thread(s)" in line and line.endswith("MISS")
    assert sb.verdicts(rows[:1])[0].endswith("PASS")


def test_tiny_run_prints_the_table_and_writes_the_json(tmp_path, capsys):
    out = tmp_path / "step_bench.json"
    sb.main(["--which", "tiny", "--threads", "1", "--steps", "1", "--max-rounds", "2", "--profile", "1",
             "--json", str(out)])
    text = capsys.readouterr().out
    assert "jittor s" in text and "torch s" in text and "J/T" in text and "%peak" in text
    assert "jittor / pytorch step, tiny: " in text and "thread(s)" in text
    (row,) = json.loads(out.read_text())
    assert row["setting"] == "tiny" and row["size"] == "48x32" and row["threads"] == 1
    # same outputs on the same weights: the mirror computes what pipeline/model computes
    assert row["mirror_max_rel_diff"] < 1e-4
    assert row["jittor_s"] > 0 and row["torch_s"] > 0
    assert row["ratio_of_medians"] == pytest.approx(row["jittor_s"] / row["torch_s"], rel=1e-2)
    ratios = [a / b for a, b in zip(row["jittor_all_s"][row["timed_from_round"]:],
                                    row["torch_all_s"][row["timed_from_round"]:])]
    assert min(ratios) <= row["ratio"] <= max(ratios)  # the median of the per-round ratios
    assert row["conv_gflop_step"] > 0 and row["machine_conv_gflops"] > 1
    assert 0 < row["torch_conv_share"] < 1 and 0 < row["jittor_conv_share"] < 1
    for fw in ("jittor", "torch"):
        prof = row["profile"][fw]
        assert prof["conv_s"] > 0 and prof["kernel_s"] >= prof["conv_s"] and prof["top"]


def test_the_recipe_mirror_computes_what_the_project_computes():
    """Spectral norm in G and E and the edge discriminator on: same outputs on the same weights,
    and the step (edge GAN and contrastive terms) runs on both sides."""
    row = sb.bench_setting("tiny-recipe", 1, steps=1, check=True, profile=0, max_rounds=2)
    assert row["mirror_max_rel_diff"] < 1e-4
    assert row["jittor_s"] > 0 and row["torch_s"] > 0
