"""Class colour hints: per-class mean colours of a reference under its own label map, checked
against numpy; painted back onto another map; hidden at the configured rate."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.jt_env import setup_jittor

jt = setup_jittor("cpu")  # before any pipeline.model import

from pipeline.model.hints import class_hints, drop_hints, no_hints, paint_hints  # noqa: E402


def _case(seed=0, k=5, h=8, w=10):
    rng = np.random.default_rng(seed)
    img = rng.uniform(-1, 1, (2, 3, h, w)).astype(np.float32)
    lab = rng.integers(0, k - 1, (2, h, w))  # class k-1 never present
    seg = np.eye(k, dtype=np.float32)[lab].transpose(0, 3, 1, 2)
    return img, lab, seg


def test_hints_are_the_class_means_and_presence():
    img, lab, seg = _case()
    hints = class_hints(jt.array(img), jt.array(seg), 3).numpy()
    for b in range(2):
        for c in range(5):
            mask = lab[b] == c
            if mask.sum() >= 3:
                np.testing.assert_allclose(hints[b, c, :3], img[b][:, mask].mean(axis=1), atol=1e-5)
                assert hints[b, c, 3] == 1
            else:
                assert np.all(hints[b, c] == 0)


def test_small_classes_give_no_hint():
    img, lab, seg = _case()
    counts = np.bincount(lab[0].ravel(), minlength=5)
    hints = class_hints(jt.array(img), jt.array(seg), int(counts.max()) + 1).numpy()
    assert np.all(hints[0, :, 3] == 0)


def test_painted_hints_follow_the_other_map():
    img, lab, seg = _case()
    _, lab2, seg2 = _case(seed=1)
    hints = class_hints(jt.array(img), jt.array(seg), 1).numpy()
    painted = paint_hints(jt.array(hints), jt.array(seg2)).numpy()
    expected = hints[np.arange(2)[:, None, None], lab2].transpose(0, 3, 1, 2)
    np.testing.assert_allclose(painted, expected, atol=1e-6)


def test_drop_hides_whole_classes_at_about_the_rate():
    hints = jt.ones((64, 29, 4))
    kept = drop_hints(hints, 0.3).numpy()
    per_class = kept.reshape(-1, 4)
    assert set(np.unique(per_class.sum(axis=1))) <= {0.0, 4.0}  # a class is hidden whole
    assert 0.2 < (per_class[:, 3] == 0).mean() < 0.4
    assert np.array_equal(drop_hints(hints, 0.0).numpy(), hints.numpy())
    assert np.all(no_hints(jt.zeros((2, 29, 4, 4))).numpy() == 0)


@pytest.mark.parametrize("hints_on", [True, False])
def test_generator_sees_the_hint_map_only_when_configured(hints_on):
    from pipeline.model.generator import Generator
    from tests.pipeline.model_testutil import NO_TEXTURE, tiny_config

    cfg = tiny_config(f"model.class_hints={str(hints_on).lower()}", *([] if hints_on else NO_TEXTURE))
    gen = Generator(cfg.model, 32, 48)
    assert gen.blocks[0].norm_0.shared[0].in_channels == 29 + (4 if hints_on else 0)


def test_hint_logits_invert_tanh_where_present():
    from pipeline.model.hints import hint_logits

    rgb = np.array([-0.5, 0.0, 0.9], np.float32)
    hint_map = np.zeros((1, 4, 2, 2), np.float32)
    hint_map[0, :3, 0, 0] = rgb
    hint_map[0, 3, 0, 0] = 1
    hint_map[0, :3, 1, 1] = rgb  # no presence: no skip
    out = hint_logits(jt.array(hint_map)).numpy()
    np.testing.assert_allclose(np.tanh(out[0, :, 0, 0]), rgb, atol=1e-5)
    assert np.all(out[0, :, 1, 1] == 0)



def test_changing_the_reference_moves_the_output_colours_towards_it():
    """Same map, two references of opposite colours (each with its own label map): the generated
    image's colours move towards the new reference, class by class (no training needed: the hint
    colours reach the output directly and through every SPADE block)."""
    from pipeline.model.ganmodel import GANModel
    from tests.pipeline.model_testutil import NO_STYLE, H, W, tiny_config

    cfg = tiny_config("model.use_vae=false", *NO_STYLE)
    jt.set_global_seed(0)
    model = GANModel(cfg, H, W, for_training=False)
    lab = np.zeros((1, H, W), np.int64)
    lab[:, H // 2:] = 5  # sky above, tree below
    seg = jt.array(np.eye(29, dtype=np.float32)[lab].transpose(0, 3, 1, 2))
    warm = np.zeros((1, 3, H, W), np.float32)
    warm[:, 0] = 0.8  # red sky and trees
    cold = np.zeros((1, 3, H, W), np.float32)
    cold[:, 2] = 0.8  # blue sky and trees
    out_warm = model.generate(seg, jt.array(warm), ref_seg=seg)["image"].numpy()
    out_cold = model.generate(seg, jt.array(cold), ref_seg=seg)["image"].numpy()
    shift = (out_cold - out_warm).mean(axis=(0, 2, 3))  # per channel
    assert shift[2] > 0.3 and shift[0] < -0.3, shift
    no_hint = model.generate(seg, jt.array(cold))["image"].numpy()
    assert not np.allclose(no_hint, out_cold)  # without the reference's map there is no hint
