"""pipeline.bench's measuring loop: the steady-state warm-up, the timed steps, the kernel count
(a fake clock stands in for the step, so no model is built here)."""

from __future__ import annotations

import pytest

from pipeline.bench import count_kernels, spread, time_steps, warm_up


class FakeSteps:
    """A step whose durations are given; `clock` advances only while a step runs."""

    def __init__(self, durations):
        self.durations, self.now, self.calls = list(durations), 0.0, 0

    def clock(self) -> float:
        return self.now

    def step(self) -> None:
        self.now += self.durations[self.calls]
        self.calls += 1


def test_warm_up_runs_until_three_consecutive_steps_agree_within_ten_percent():
    fake = FakeSteps([9.0, 2.0, 1.4, 1.2, 1.0, 1.05, 0.98, 1.0, 1.0])
    times, steady = warm_up(fake.step, clock=fake.clock)
    assert steady and times == pytest.approx([9.0, 2.0, 1.4, 1.2, 1.0, 1.05, 0.98])  # 1.05 / 0.98: +7%
    assert fake.calls == 7


def test_a_second_step_still_slow_is_not_steady():
    # the finding: the second step is 1.2-1.4x the steady state
    fake = FakeSteps([30.0, 1.3, 1.0, 1.0, 1.0])
    times, steady = warm_up(fake.step, clock=fake.clock)
    assert steady and len(times) == 5


def test_warm_up_is_capped_by_steps_and_by_time():
    noisy = [1.0, 1.5] * 20
    fake = FakeSteps(noisy)
    times, steady = warm_up(fake.step, max_steps=6, clock=fake.clock)
    assert not steady and len(times) == 6
    fake = FakeSteps(noisy)
    times, steady = warm_up(fake.step, max_seconds=5.0, clock=fake.clock)
    assert not steady and sum(times) >= 5.0 and sum(times[:-1]) < 5.0


def test_time_steps_and_spread():
    fake = FakeSteps([1.0, 2.0, 1.5])
    assert time_steps(fake.step, 3, clock=fake.clock) == pytest.approx([1.0, 2.0, 1.5])
    assert spread([1.0, 2.0, 1.5]) == pytest.approx(1.0)
    assert spread([2.0, 2.0]) == 0.0


def test_count_kernels_counts_shared_libraries(tmp_path):
    jit = tmp_path / "jit"
    assert count_kernels(jit) == 0  # no folder yet
    jit.mkdir()
    for name in ("a_op.cc", "a_op.so", "a_op.so.key", "a_op.s", "b_op.so", "b_op.cc"):
        (jit / name).write_text("x")
    assert count_kernels(jit) == 2


def test_cold_start_reads_the_child_line_and_subtracts_the_warm_times(monkeypatch):
    import subprocess

    import pipeline.bench as bench

    seen = {}

    def fake_run(cmd, **kwargs):
        seen["cmd"], seen["pch"] = cmd, kwargs["env"]["LANDSCAPE_KERNEL_PCH"]
        out = "Compiling Operators(3/3)\nCOLD-START {\"kernels\": 192, \"build_s\": 40.5, \"first_step_s\": 284.0}\n"
        return subprocess.CompletedProcess(cmd, 0, out, "")

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    r = bench.cold_start("demo", "cpu", {"build_s": 0.5, "train_step_s": 1.0})
    assert seen["cmd"][-4:] == ["--cold-child", "demo", "--device", "cpu"]
    assert r["cold_kernels"] == 192 and r["compile_s"] == pytest.approx(323.0)
    assert seen["pch"] == "1" and r["pch"] is True  # the project's default: with the header
    assert bench.cold_start("demo", "cpu", {"build_s": 0.5, "train_step_s": 1.0}, pch=False)["pch"] is False
    assert seen["pch"] == "0"  # Jittor as shipped

    monkeypatch.setattr(bench.subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "Traceback ...\nboom"))
    with pytest.raises(RuntimeError, match="boom"):
        bench.cold_start("demo", "cpu", {"build_s": 0.5, "train_step_s": 1.0})
