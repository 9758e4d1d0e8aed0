"""Data order: which samples each step of each rank sees, checked against direct definitions."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.errors import ConfigError
from pipeline.core.preprocessed import PreprocessedData
from pipeline.train import TrainData

from .model_testutil import tiny_config


@pytest.fixture(scope="module")
def prep(sample_preprocessed):
    return PreprocessedData.open(sample_preprocessed)


def test_ranks_split_each_epoch_without_overlap(prep):
    cfg = tiny_config("train.batch_size=3")
    whole = TrainData(prep, cfg)
    assert whole.count == 20 and whole.steps_per_epoch == 6
    ranks = [TrainData(prep, cfg, rank=r, world=2) for r in range(2)]
    assert [d.steps_per_epoch for d in ranks] == [3, 3]  # 10 images per rank, batches of 3
    for epoch in range(3):
        order = np.random.default_rng([cfg.seed, epoch]).permutation(20)  # the documented order
        plans = [d.epoch_plan(epoch)[0] for d in ranks]
        for rank, plan in enumerate(plans):
            np.testing.assert_array_equal(plan.ravel(), order[rank::2][:9])
        assert not set(plans[0].ravel()) & set(plans[1].ravel())
        np.testing.assert_array_equal(whole.epoch_plan(epoch)[0].ravel(), order[:18])
    assert not np.array_equal(whole.epoch_plan(0)[0], whole.epoch_plan(1)[0])
    np.testing.assert_array_equal(whole.epoch_plan(2)[1], TrainData(prep, cfg).epoch_plan(2)[1])


def test_batch_reads_and_flips_the_arrays(prep):
    data = TrainData(prep, tiny_config())
    raw = prep.arrays("train")
    indices, flips = np.array([7, 2, 11]), np.array([True, False, True])
    batch = data.batch(indices, flips)
    for j, (i, flip) in enumerate(zip(indices, flips)):
        for kind in ("images", "labels", "edges"):
            want = np.flip(raw[kind][i], axis=1) if flip else raw[kind][i]
            np.testing.assert_array_equal(batch[kind][j], want, err_msg=f"{kind} {i}")
    no_flip = TrainData(prep, tiny_config("train.flip=false"))
    assert not no_flip.epoch_plan(0)[1].any() and data.epoch_plan(0)[1].any()


@pytest.mark.parametrize("prefetch", [False, True])
def test_batches_follow_the_plans_across_epochs(prep, prefetch):
    data = TrainData(prep, tiny_config())  # 10 steps per epoch
    got = list(data.batches(7, 23, prefetch=prefetch))
    assert len(got) == 16
    for n, batch in enumerate(got):
        epoch, i = divmod(7 + n, 10)
        indices, flips = data.epoch_plan(epoch)
        want = data.batch(indices[i], flips[i])
        for kind in want:
            np.testing.assert_array_equal(batch[kind], want[kind], err_msg=f"step {7 + n} {kind}")
    assert list(data.batches(5, 5, prefetch=prefetch)) == []


def test_sample_batch_is_the_first_validation_items(prep):
    batch = TrainData(prep, tiny_config()).sample_batch()
    np.testing.assert_array_equal(batch["labels"], prep.arrays("val")["labels"][:4])


def test_too_few_images_for_the_batch_are_refused(prep):
    with pytest.raises(ConfigError, match="lower the batch size"):
        TrainData(prep, tiny_config("train.batch_size=11"), rank=0, world=2)
