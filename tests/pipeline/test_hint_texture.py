"""model.hint_texture: the colour entering the output is, per pixel, a random reference pixel of
the same class (not the flat class mean), checked against numpy; it lifts the style term of an
untrained generator's output, is deterministic when generating and off by default."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

from pipeline.jt_env import setup_jittor  # noqa: E402

jt = setup_jittor("cpu")

from evaluation.metric_color_hist import style_correlation  # noqa: E402
from pipeline.model.generator import Generator  # noqa: E402
from pipeline.model.hints import class_hints, class_texture, paint_hints  # noqa: E402

from .model_testutil import H, W, tiny_config  # noqa: E402

K = 6


def _onehot(labels, k=K):
    return jt.array(np.eye(k, dtype=np.float32)[labels].transpose(0, 3, 1, 2))


def _case(seed=0, h=12, w=16):
    rng = np.random.default_rng(seed)
    ref = rng.uniform(-1, 1, (2, 3, h, w)).astype(np.float32)
    ref_labels = rng.integers(0, 3, (2, h, w))  # the reference has classes 0..2
    labels = rng.integers(0, 5, (2, h, w))  # the map also has 3 and 4: no hint for those
    hints = class_hints(jt.array(ref), _onehot(ref_labels), 4)
    hint_map = paint_hints(hints, _onehot(labels))
    return ref, ref_labels, labels, hint_map


def _texture(ref, ref_labels, labels, hint_map, training=False):
    hinted, absent = class_texture(jt.array(ref), _onehot(ref_labels), _onehot(labels), hint_map,
                                   training)
    assert absent is None
    return hinted.numpy()


def test_absent_classes_get_the_whole_reference_spread():
    """model.hint_texture_absent: a pixel whose class has no hint gets a random pixel of the whole
    reference minus the reference's mean; hinted pixels get 0 there."""
    ref, ref_labels, labels, hint_map = _case(4)
    hinted, absent = class_texture(jt.array(ref), _onehot(ref_labels), _onehot(labels), hint_map,
                                   False, absent=True)
    np.testing.assert_array_equal(hinted.numpy(), _texture(ref, ref_labels, labels, hint_map))
    absent = absent.numpy()
    for i in range(2):
        pixels = ref[i].reshape(3, -1).T
        mean = pixels.mean(axis=0)
        for y, x in np.ndindex(*labels.shape[1:]):
            if labels[i, y, x] < 3:
                np.testing.assert_array_equal(absent[i, :, y, x], 0)
            else:
                assert np.abs(pixels - mean - absent[i, :, y, x]).max(axis=1).min() < 1e-5, (i, y, x)
    a2 = class_texture(jt.array(ref), _onehot(ref_labels), _onehot(labels), hint_map, False,
                       absent=True)[1].numpy()
    np.testing.assert_array_equal(absent, a2)  # fixed when generating


def test_each_pixel_takes_a_reference_pixel_of_its_own_class():
    ref, ref_labels, labels, hint_map = _case()
    colour = _texture(ref, ref_labels, labels, hint_map) + hint_map.numpy()[:, :3]
    for i in range(2):
        for y, x in np.ndindex(*labels.shape[1:]):
            c = labels[i, y, x]
            if c < 3:  # hinted: the colour is one of the reference's pixels of class c
                pixels = ref[i][:, ref_labels[i] == c].T
                assert np.abs(pixels - colour[i, :, y, x]).max(axis=1).min() < 1e-5, (i, y, x)
            else:  # no hint: no texture either
                np.testing.assert_array_equal(colour[i, :, y, x] - hint_map.numpy()[i, :3, y, x], 0)


def test_draws_follow_the_reference_class_distribution():
    """A class whose reference pixels are 30% one colour and 70% another gets about that mix."""
    h, w = 40, 40
    ref = np.zeros((1, 3, h, w), np.float32)
    ref[0, :, :12] = 0.8  # 12 of 40 rows: 30%
    ref[0, :, 12:] = -0.6
    ref_labels = np.zeros((1, h, w), np.int64)
    labels = np.zeros((1, h, w), np.int64)
    hint_map = paint_hints(class_hints(jt.array(ref), _onehot(ref_labels), 4), _onehot(labels))
    colour = _texture(ref, ref_labels, labels, hint_map) + hint_map.numpy()[:, :3]
    bright = np.isclose(colour[0, 0], 0.8, atol=1e-5).mean()
    assert np.isclose(colour[0, 0], 0.8, atol=1e-5).sum() + np.isclose(colour[0, 0], -0.6, atol=1e-5).sum() == h * w
    assert 0.25 < bright < 0.35, bright
    assert np.abs(colour[0, 0] - colour[0, 0].mean()).mean() > 0.5  # spread, not the flat mean


def test_fixed_when_generating_fresh_in_training():
    case = _case(1)
    a, b = _texture(*case), _texture(*case)
    np.testing.assert_array_equal(a, b)
    t1, t2 = _texture(*case, training=True), _texture(*case, training=True)
    assert np.abs(t1 - t2).mean() > 0.05


def _generator(texture: float, learnt: bool = False, absent: float = 0.0):
    cfg = tiny_config("model.style_palette=0", "model.class_hints=true", "model.hint_skip=true",
                      f"model.hint_texture={texture}", f"model.hint_texture_absent={absent}",
                      f"model.hint_texture_learnt={str(learnt).lower()}")
    jt.set_global_seed(0, different_seed_for_mpi=False)
    gen = Generator(cfg.model, H, W)
    for conv in [gen.conv_img] + ([gen.spm.out] if gen.semantic else []):
        conv.weight.update(jt.zeros(conv.weight.shape))
        conv.bias.update(jt.zeros(conv.bias.shape))
    gen.eval()
    return gen


def test_texture_lifts_the_style_of_an_untrained_generator():
    """With the output conv drawing nothing, the image is the hint colours: flat means without
    the texture, the reference's own colour spread with it; the style term (the scorer's rgb-16
    histogram correlation) must rise well above the flat version's."""
    rng = np.random.default_rng(3)
    labels = np.zeros((1, H, W), np.int64)
    labels[:, H // 2:] = 5
    ref_labels = labels.copy()
    ref = np.empty((1, 3, H, W), np.float32)  # sky: blues spread widely, ground: greens
    ref[0, :, : H // 2] = (np.array([-0.5, 0.0, 0.7])[:, None, None]
                           + rng.uniform(-0.3, 0.3, (3, H // 2, W)))
    ref[0, :, H // 2:] = (np.array([-0.3, 0.4, -0.4])[:, None, None]
                          + rng.uniform(-0.3, 0.3, (3, H - H // 2, W)))
    seg, ref_seg, ref_v = _onehot(labels, 29), _onehot(ref_labels, 29), jt.array(ref)
    hints = class_hints(ref_v, ref_seg, 16)
    to_uint8 = lambda x: ((x[0].transpose(1, 2, 0) + 1) * 127.5).round().clip(0, 255).astype(np.uint8)  # noqa: E731
    scores = {}
    for texture in (0.0, 1.0):
        gen = _generator(texture)
        z = jt.zeros((1, gen.z_dim))
        image = gen(seg, z, hints, ref=ref_v, ref_seg=ref_seg)["image"].numpy()
        scores[texture] = style_correlation(to_uint8(image), to_uint8(ref), "rgb-16")
    assert scores[1.0] > scores[0.0] + 0.3, scores
    assert scores[1.0] > 0.6, scores


def test_absent_spread_reaches_the_output_only_where_the_class_has_no_hint():
    """The untrained generator (output conv drawing nothing) with hint_texture_absent: hinted
    pixels are as without it; pixels of a class the reference lacks vary by the reference's
    spread (pre-tanh), where without it they are flat."""
    rng = np.random.default_rng(5)
    labels = np.zeros((1, H, W), np.int64)
    labels[:, H // 2:] = 5  # class 5: hinted; class 0 (top half): the reference lacks it
    ref_labels = np.full((1, H, W), 5, np.int64)
    ref = rng.uniform(-0.5, 0.5, (1, 3, H, W)).astype(np.float32)
    seg, ref_seg, ref_v = _onehot(labels, 29), _onehot(ref_labels, 29), jt.array(ref)
    hints = class_hints(ref_v, ref_seg, 16)
    images = {}
    for absent in (0.0, 1.0):
        gen = _generator(1.0, absent=absent)
        images[absent] = gen(seg, jt.zeros((1, gen.z_dim)), hints, ref=ref_v,
                             ref_seg=ref_seg)["image"].numpy()[0]
    top, bottom = slice(0, H // 2), slice(H // 2, H)
    np.testing.assert_array_equal(images[0.0][:, bottom], images[1.0][:, bottom])
    assert images[0.0][:, top].std() < 1e-6
    spread = np.arctanh(images[1.0][:, top]).reshape(3, -1).std(axis=1)
    np.testing.assert_allclose(spread, ref.reshape(3, -1).std(axis=1), rtol=0.2)


def test_learnt_scale_is_a_generator_parameter_only_when_asked():
    names = lambda g: {k for k in g.state_dict()}  # noqa: E731
    assert "texture_gain" in names(_generator(0.5, learnt=True))
    assert "texture_gain" not in names(_generator(0.5))
    assert _generator(0.5, learnt=True).texture_gain.numpy().tolist() == [0.5]
    assert "texture_gain" not in names(_generator(0.0, learnt=True))


def test_config_refuses_a_texture_without_the_hint_colours_at_the_output():
    with pytest.raises(Exception, match="model.hint_texture"):
        tiny_config("model.hint_texture=1", "model.hint_skip=false", "model.style_palette=0")
    with pytest.raises(Exception, match="model.hint_texture"):
        tiny_config("model.hint_texture=-1")
    with pytest.raises(Exception, match="model.hint_texture_absent"):
        tiny_config("model.hint_texture_absent=1", "model.hint_skip=false", "model.style_palette=0")
