"""The training schedule: pure functions of the step, checked against direct definitions."""

from __future__ import annotations

import pytest

from pipeline.train import Schedule, lr_factor

from .model_testutil import tiny_config


def test_lr_schedule_is_flat_then_linear_to_zero():
    assert lr_factor(0, 10, 2, 2) == 1.0
    assert lr_factor(19, 10, 2, 2) == 1.0
    assert lr_factor(30, 10, 2, 2) == pytest.approx(0.5)
    assert lr_factor(40, 10, 2, 2) == 0.0
    assert lr_factor(25, 10, 2, 0) == 0.0  # no decay epochs: zero after the flat part
    sched = Schedule(steps_per_epoch=10, epochs=2, decay_epochs=2)
    # reference: the learning rate of each step, written out step by step
    expected = [1.0] * 20 + [1.0 - i / 20 for i in range(20)]
    assert [sched.lr_factor(s) for s in range(40)] == pytest.approx(expected)


def test_total_steps_and_position():
    assert Schedule(10, 2, 3).total_steps == 50
    assert Schedule(10, 2, 3, max_steps=7).total_steps == 7
    assert Schedule(10, 2, 3, max_steps=500).total_steps == 50
    assert Schedule(10, 2, 3).position(0) == (0, 0)
    assert Schedule(10, 2, 3).position(23) == (2, 3)


def test_due_steps_include_the_last():
    sched = Schedule(10, 1, 1, max_steps=11, log_every=5, sample_every=4, checkpoint_every=6)
    done = range(1, sched.total_steps + 1)
    assert [s for s in done if sched.log_due(s)] == [5, 10, 11]
    assert [s for s in done if sched.sample_due(s)] == [4, 8, 11]
    assert [s for s in done if sched.checkpoint_due(s)] == [6, 11]


def test_ema_decay_warms_up_to_the_target():
    sched = Schedule(10, 1, 1, ema_decay_target=0.99)
    assert sched.ema_decay(0) == pytest.approx(0.1)
    assert sched.ema_decay(10) == pytest.approx(11 / 20)
    assert sched.ema_decay(10_000) == 0.99
    decays = [sched.ema_decay(s) for s in range(2000)]
    assert all(a <= b for a, b in zip(decays, decays[1:]))


def test_from_config_reads_the_train_keys():
    cfg = tiny_config("train.max_steps=9", "train.ema_decay=0.95")
    sched = Schedule.from_config(cfg, steps_per_epoch=10)
    t = cfg.train
    assert sched == Schedule(10, t.epochs, t.decay_epochs, 9, t.log_every, t.sample_every,
                             t.checkpoint_every, 0.95)
    assert sched.total_steps == 9
