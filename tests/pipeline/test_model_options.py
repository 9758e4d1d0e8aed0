"""The model's option keys (ECGAN recipe, style mechanisms): each off gives main's old network
exactly, each on adds only its own part, and each does what it says, checked against numpy."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")  # spin-waiting threads are slow on a shared CPU

from pipeline.jt_env import setup_jittor  # noqa: E402

jt = setup_jittor("cpu")  # before any pipeline.model import

from jittor import nn  # noqa: E402

from pipeline.model.ganmodel import GANModel, images_to_tensor, labels_to_onehot  # noqa: E402
from pipeline.model.generator import Generator  # noqa: E402
from pipeline.model.normalization import SNConv2d  # noqa: E402
from pipeline.train import Trainer, batch_to_vars  # noqa: E402

from .model_testutil import H, W, tiny_config  # noqa: E402

GOLDEN = json.loads((Path(__file__).parent / "golden_model_main.json").read_text())
# every new model key off (the loss keys below change no network)
OFF = ["loss.edge_gan=0", "model.spectral_norm_g=false", 'model.init="default"',
       'model.upsample="nearest"', "model.style_shuffle=0", "model.style_modulation=false",
       "model.style_stats=false", "model.style_palette=0", "model.noise=false",
       "model.hint_texture=0", "model.hint_texture_absent=0"]


def _toml(value) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value).lower()


def golden_config(*extra: str):
    """The tiny config with the golden's model keys pinned and every new key off, then `extra`."""
    pinned = [f"model.{k}={_toml(v)}" for k, v in GOLDEN["model"].items()]
    return tiny_config("seed=0", *pinned, *OFF, *extra)


def _model(cfg):
    jt.set_global_seed(0, different_seed_for_mpi=False)
    return GANModel(cfg, H, W, log=lambda m: None)


def _shapes(model) -> dict:
    return {f"{net}.{k}": tuple(v.shape) for net, m in model.networks().items()
            for k, v in m.state_dict().items()}


def _golden_batch():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 29, (2, H, W)).astype(np.uint8)
    labels[:, H // 2:] = 5
    images = rng.integers(0, 255, (2, H, W, 3)).astype(np.uint8)
    return jt.array(labels_to_onehot(labels, 29)), jt.array(images_to_tensor(images))


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros((2, H, W), np.uint8)
    labels[:, H // 2:] = 5
    labels[:, :, : W // 3] = 1
    images = rng.integers(0, 255, (2, H, W, 3), dtype=np.uint8)
    edges = np.zeros((2, H, W), np.uint8)
    edges[:, H // 2] = 255
    return batch_to_vars(jt, {"images": images, "labels": labels, "edges": edges}, 29)


def test_all_options_off_is_mains_old_network():
    """Same parameter names, shapes and initial values as main before the options (so its
    checkpoints load at these settings), and the same generated images."""
    model = _model(golden_config())
    got = {f"{net}.{k}": v.numpy().astype(np.float64) for net, m in model.networks().items()
           for k, v in m.state_dict().items()}
    assert sorted(got) == sorted(GOLDEN["params"])
    for key, (shape, total, abs_total) in GOLDEN["params"].items():
        assert list(got[key].shape) == shape, key
        assert got[key].sum() == pytest.approx(total, rel=1e-6, abs=1e-6), key
        assert np.abs(got[key]).sum() == pytest.approx(abs_total, rel=1e-6), key
    seg, ref = _golden_batch()
    out = model.generate(seg, ref, ref_seg=seg)
    for key, (total, abs_total) in GOLDEN["outputs"].items():
        a = out[key].numpy().astype(np.float64)
        assert a.sum() == pytest.approx(total, rel=1e-4, abs=1e-3), key
        assert np.abs(a).sum() == pytest.approx(abs_total, rel=1e-4), key


# key on -> what the parameter names it adds look like (None: it adds none)
ADDED = {
    "model.spectral_norm_g=true": lambda k: (k.endswith(".weight_u")
                                             and (".conv_" in k or ".convs." in k)),
    "loss.edge_gan=1": lambda k: k.startswith("discriminator.edge."),
    "model.style_modulation=true": lambda k: ".style." in k,
    "model.style_palette=5": lambda k: ".palette." in k,
    "model.noise=true": lambda k: ".noise." in k,
    "model.style_stats=true": None,
    'model.init="xavier"': None,
    'model.upsample="bilinear"': None,
    "model.style_shuffle=4": None,
}


@pytest.mark.parametrize("key", list(ADDED))
def test_each_option_adds_only_its_own_parameters(key):
    old = _shapes(_model(golden_config()))
    new = _shapes(_model(golden_config(key)))
    assert set(old) <= set(new)
    extra = set(new) - set(old)
    if ADDED[key] is None:
        assert not extra
    else:
        assert extra and all(ADDED[key](k) for k in extra), sorted(extra)[:5]
    changed = {k for k in old if old[k] != new[k]}
    if key == "model.style_stats=true":  # the encoder heads read 6 + bins**3 more inputs
        assert changed == {f"{e}.{fc}.weight" for e in ("encoder", "ema_encoder")
                           for fc in ("fc_mu", "fc_var")}
        assert new["encoder.fc_mu.weight"][1] - old["encoder.fc_mu.weight"][1] == 6 + 8 ** 3
    else:
        assert not changed


def test_spectral_norm_in_generator_and_encoder():
    model = _model(golden_config("model.spectral_norm_g=true"))
    conv, enc_conv = model.generator.blocks[1].conv_0, model.encoder.convs[0]
    assert isinstance(conv, SNConv2d) and isinstance(enc_conv, SNConv2d)
    assert isinstance(model.generator.conv_img, nn.Conv2d)  # the output conv stays plain (SPADE)
    trained = {id(v) for v in model.generator_parameters()}
    assert id(conv.weight) in trained and id(conv.weight_u) not in trained
    for _ in range(150):  # one power-iteration step per training forward
        conv._sigma()
    w = conv.weight.numpy()
    sigma = np.linalg.svd(w.reshape(w.shape[0], -1), compute_uv=False)[0]
    conv.eval()
    x = jt.array(np.random.default_rng(1).normal(size=(1, w.shape[1], 5, 6)).astype(np.float32))
    expected = nn.conv2d(x, jt.array(w / sigma), conv.bias, padding=1).numpy()
    np.testing.assert_allclose(conv(x).numpy(), expected, rtol=1e-3, atol=1e-4)


def _init_modules(model):
    for net in (model.generator, model.encoder, model.discriminator):
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, SNConv2d, nn.Linear)):
                yield m


def test_xavier_init_has_the_gain_zero_biases_and_leaves_the_palette_at_zero():
    a = _model(golden_config('model.init="xavier"', "model.init_gain=0.02", "model.style_palette=5"))
    b = _model(golden_config('model.init="xavier"', "model.init_gain=0.05", "model.style_palette=5"))
    palette = a.generator.palette.linear
    stds, expected = [], []
    for ma, mb in zip(_init_modules(a), _init_modules(b)):
        if ma is palette:
            continue
        wa = ma.weight.numpy()
        # the same seeded draws: the weights scale exactly with the gain
        np.testing.assert_allclose(mb.weight.numpy(), wa * 2.5, rtol=1e-5, atol=1e-9)
        if getattr(ma, "bias", None) is not None:
            assert not ma.bias.numpy().any()
        receptive = int(np.prod(wa.shape[2:])) if wa.ndim > 2 else 1
        stds.append(wa.std())
        expected.append(0.02 * math.sqrt(2 / (wa.shape[1] * receptive + wa.shape[0] * receptive)))
    # pooled over the many small tensors: each std about its xavier value
    assert np.median(np.array(stds) / np.array(expected)) == pytest.approx(1.0, abs=0.1)
    assert not palette.weight.numpy().any() and not palette.bias.numpy().any()
    # the EMA copies start equal to the live networks
    np.testing.assert_array_equal(a.ema_generator.conv_img.weight.numpy(),
                                  a.generator.conv_img.weight.numpy())


def _edge_terms_numpy(model, seg, fake_edge, real_edge):
    """Hinge terms of the edge discriminator, computed in numpy from its raw outputs."""
    fake = [f[-1].numpy() for f in model.discriminator.edge(jt.concat([seg, fake_edge], dim=1))]
    real = [f[-1].numpy() for f in model.discriminator.edge(jt.concat([seg, real_edge], dim=1))]
    return {"d_edge_fake": np.mean([np.maximum(0, 1 + f).mean() for f in fake]),
            "d_edge_real": np.mean([np.maximum(0, 1 - r).mean() for r in real]),
            "g_edge_gan": np.mean([-f.mean() for f in fake])}


def test_edge_discriminator_is_used_only_when_edge_gan_is_on():
    batch = _batch()
    for extra in (["loss.edge_gan=0"], ["loss.edge_gan=1", 'model.kind="spade"']):
        model = _model(golden_config(*extra))
        assert model.discriminator.edge is None
        losses, outputs = model.generator_step(batch)
        d = model.discriminator_step(batch, outputs)
        assert not {"g_edge_gan", "g_edge_feat", "d_edge_real", "d_edge_fake"} & (set(losses) | set(d))
    cfg = golden_config("loss.edge_gan=0.5", "loss.gan=2")
    trainer = Trainer(cfg, jt, H, W, log=lambda m: None)
    model = trainer.model
    assert any(n.startswith("discriminator.edge.") for n in trainer.optimizers()["opt_d"][1])
    model.discriminator.eval()  # no power-iteration step: every pass below sees the same weights
    losses, outputs = model.generator_step(batch)
    d = model.discriminator_step(batch, outputs)
    assert {"g_edge_gan", "g_edge_feat"} <= set(losses) and {"d_edge_real", "d_edge_fake"} <= set(d)
    ref = _edge_terms_numpy(model, batch["seg"], outputs["edge"], batch["edge"])
    for name in ("d_edge_fake", "d_edge_real"):
        assert d[name].item() == pytest.approx(ref[name], rel=1e-4)
    assert losses["g_edge_gan"].item() == pytest.approx(ref["g_edge_gan"], rel=1e-4, abs=1e-6)
    # its weight is edge_gan x gan (feature matching: edge_gan x feat)
    assert model.weighted_sum({"g_edge_gan": 1.0}) == pytest.approx(1.0)
    assert model.weighted_sum({"g_edge_feat": 1.0}) == pytest.approx(0.5 * cfg.loss.feat)
    # a step trains it: the edge discriminator's weights move
    model.discriminator.train()  # (Jittor's eval() also stops the parameters' gradients)
    w0 = model.discriminator.edge.nets[0].stages[0][0].weight.numpy().copy()
    trainer.train_step(batch, 1.0)
    assert not np.array_equal(w0, model.discriminator.edge.nets[0].stages[0][0].weight.numpy())


def test_contrastive_term_reads_the_last_generator_stages():
    cfg = golden_config("loss.contrastive=1", "loss.contrastive_scales=2")
    model = _model(cfg)
    batch = _batch()
    z = model.encoder(batch["image"])[0]
    out = model.generator(batch["seg"], z, features=2)
    shapes = [tuple(f.shape[2:]) for f in out["features"]]
    assert shapes == [(H // 2, W // 2), (H, W)]
    losses, outputs = model.generator_step(batch)
    assert "g_contrast" in losses and "features" not in outputs
    assert losses["g_contrast"].item() > 0
    off, _ = _model(golden_config("loss.contrastive=0")).generator_step(batch)
    assert "g_contrast" not in off


def _painting_generator(*extra: str) -> Generator:
    """A generator whose output conv and refined-image conv draw nothing (weights and biases 0),
    so image = tanh(what enters before the tanh)."""
    cfg = golden_config(*extra)
    gen = Generator(cfg.model, H, W)
    for conv in [gen.conv_img] + ([gen.spm.out] if gen.semantic else []):
        conv.weight.update(jt.zeros(conv.weight.shape))
        conv.bias.update(jt.zeros(conv.bias.shape))
    if gen.palette is not None:
        bias = np.zeros((29, 3), np.float32)
        bias[1] = [0.1, -0.05, 0.02]  # class 1's learnt colour (times the gain)
        bias[5] = [-0.1, 0.1, 0.0]
        gen.palette.linear.bias.update(jt.array(bias.reshape(-1)))
    return gen


def _hinted_colours(gen):
    """Per-class colours (classes 1, 5) of the image and the refined image: class 5 has a hint."""
    labels = np.zeros((1, H, W), np.int64)
    labels[:, H // 2:] = 5
    labels[:, : H // 2] = 1
    seg = jt.array(np.eye(29, dtype=np.float32)[labels].transpose(0, 3, 1, 2))
    hints = np.zeros((1, 29, 4), np.float32)
    hints[0, 5] = [0.5, -0.25, 0.8, 1.0]
    hints[0, 1, :3] = [0.9, 0.9, 0.9]  # a colour, but not present: no hint
    gen.eval()
    out = gen(seg, jt.zeros((1, gen.z_dim)), jt.array(hints))
    return {k: (out[k].numpy()[0, :, 0, 0], out[k].numpy()[0, :, -1, -1])
            for k in ("image", "refined")}


@pytest.mark.parametrize("palette,hint_skip", [(0, True), (4, True), (4, False), (4, None)])
def test_palette_takes_the_hint_colour_where_a_class_has_one(palette, hint_skip):
    extra = [f"model.style_palette={palette}"]
    extra += (["model.class_hints=false"] if hint_skip is None
              else ["model.class_hints=true", f"model.hint_skip={str(hint_skip).lower()}"])
    colours = _hinted_colours(_painting_generator(*extra))
    learnt = {1: np.tanh(4 * np.array([0.1, -0.05, 0.02])), 5: np.tanh(4 * np.array([-0.1, 0.1, 0]))}
    hint = np.array([0.5, -0.25, 0.8])
    for name, (sky, ground) in colours.items():  # class 1 above, class 5 below
        if palette == 0:  # main's hint_skip alone: the hint colour, 0 where there is none
            np.testing.assert_allclose(ground, hint, atol=1e-5)
            np.testing.assert_allclose(sky, 0, atol=1e-6)
        elif hint_skip is None:  # palette without hints: the learnt colours everywhere
            np.testing.assert_allclose(ground, learnt[5], atol=1e-5)
            np.testing.assert_allclose(sky, learnt[1], atol=1e-5)
        else:  # the hint's colour once (not tanh(2 atanh(hint))), the learnt one elsewhere
            np.testing.assert_allclose(ground, hint, atol=1e-5)
            np.testing.assert_allclose(sky, learnt[1], atol=1e-5)


def test_upsample_bilinear_is_half_pixel_linear_interpolation():
    import cv2

    gen = Generator(golden_config('model.upsample="bilinear"').model, H, W)
    x = np.random.default_rng(2).normal(size=(1, 2, 3, 4)).astype(np.float32)
    got = gen._up(jt.array(x)).numpy()
    for c in range(2):
        ref = cv2.resize(x[0, c], (8, 6), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(got[0, c], ref, atol=1e-5)
    near = Generator(golden_config().model, H, W)._up(jt.array(x)).numpy()
    np.testing.assert_array_equal(near, x.repeat(2, axis=2).repeat(2, axis=3))


def test_noise_is_fresh_in_training_and_fixed_when_generating():
    gen = Generator(golden_config("model.noise=true").model, H, W)
    for scale in gen.noise:
        scale.update(jt.ones(scale.shape))
    seg, _ = _golden_batch()
    z = jt.zeros((2, gen.z_dim))
    a, b = gen(seg, z)["image"].numpy(), gen(seg, z)["image"].numpy()
    assert not np.allclose(a, b)
    gen.eval()
    c, d = gen(seg, z)["image"].numpy(), gen(seg, z)["image"].numpy()
    np.testing.assert_array_equal(c, d)


def test_style_modulation_scales_and_shifts_each_channel():
    from pipeline.model.normalization import SPADE

    spade = SPADE(3, 2, 4, "instance", style_dim=5)
    for conv in (spade.gamma, spade.beta):
        conv.weight.update(jt.zeros(conv.weight.shape))
        conv.bias.update(jt.zeros(conv.bias.shape))
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 4, 6)).astype(np.float32)
    z = rng.normal(size=(2, 5)).astype(np.float32)
    seg = np.zeros((2, 2, 4, 6), np.float32)
    seg[:, 0] = 1
    got = spade(jt.array(x), jt.array(seg), jt.array(z)).numpy()
    gb = z @ spade.style.weight.numpy().T + spade.style.bias.numpy()  # (2, 6)
    norm = (x - x.mean((2, 3), keepdims=True)) / np.sqrt(x.var((2, 3), keepdims=True) + 1e-5)
    expected = norm * (1 + gb[:, :3, None, None]) + gb[:, 3:, None, None]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_every_option_on_trains_and_reports_its_terms():
    cfg = tiny_config("loss.edge_gan=1", "loss.contrastive=1", "model.spectral_norm_g=true",
                      'model.init="xavier"', "model.style_shuffle=2", "model.style_modulation=true",
                      "model.style_stats=true", "model.style_palette=10", "model.noise=true",
                      'model.upsample="bilinear"', "loss.colour_stats=1", "loss.colour_class=1",
                      "loss.colour_lowpass=1", "loss.colour_hist=1", "train.lr_d=0.002")
    trainer = Trainer(cfg, jt, H, W, log=lambda m: None)
    batch = _batch()
    first = trainer.train_step(batch, 1.0)
    assert {"g_edge_gan", "g_edge_feat", "g_contrast", "g_colour", "g_class_colour", "g_lowpass",
            "g_hist", "d_edge_real", "d_edge_fake"} <= set(first)
    assert all(np.isfinite(v) for v in first.values())
    history = [trainer.train_step(batch, 1.0) for _ in range(8)]
    # the edge discriminator learns to tell the fixed real edges from the generated ones
    assert history[-1]["d_edge_real"] + history[-1]["d_edge_fake"] < \
        first["d_edge_real"] + first["d_edge_fake"]
