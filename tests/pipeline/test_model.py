"""Networks: output shapes of both kinds, spectral norm, losses going down, VGG weights file."""

from __future__ import annotations

import numpy as np
import pytest

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # spin-waiting threads are slow on a shared CPU

from pipeline.jt_env import setup_jittor  # noqa: E402

jt = setup_jittor("cpu")  # before any pipeline.model import

from pipeline.core.errors import ConfigError  # noqa: E402
from pipeline.model.ganmodel import GANModel, labels_to_onehot  # noqa: E402
from pipeline.model.losses import VGG19_CONVS, load_vgg19  # noqa: E402
from pipeline.model.normalization import SNConv2d  # noqa: E402
from pipeline.train import Trainer, batch_to_vars  # noqa: E402

from .model_testutil import NO_COLOUR_LOSSES, NO_STYLE, H, W, tiny_config  # noqa: E402


def _vars(seed=0, b=2):
    rng = np.random.default_rng(seed)
    labels = np.zeros((b, H, W), np.uint8)
    labels[:, H // 2:] = 5
    labels[:, :, : W // 3] = 1
    images = np.where(labels[..., None] == 1, [120, 180, 240], [40, 120, 40]).astype(np.uint8)
    images = np.clip(images + rng.integers(0, 20, images.shape), 0, 255).astype(np.uint8)
    edges = np.zeros((b, H, W), np.uint8)
    edges[:, H // 2] = 255
    return batch_to_vars(jt, {"images": images, "labels": labels, "edges": edges}, 29)


@pytest.mark.parametrize("kind,keys", [("ecgan", {"image", "edge", "refined"}),
                                       ("spade", {"image"})])
def test_output_shapes(kind, keys):
    cfg = tiny_config(f'model.kind="{kind}"')
    model = GANModel(cfg, H, W, log=lambda m: None)
    batch = _vars()
    out = model.generate(batch["seg"], batch["image"])
    assert set(out) == keys
    assert tuple(out["image"].shape) == (2, 3, H, W)
    if kind == "ecgan":
        assert tuple(out["edge"].shape) == (2, 1, H, W)
        assert tuple(out["refined"].shape) == (2, 3, H, W)
        e = out["edge"].numpy()
        assert e.min() >= 0 and e.max() <= 1
    assert np.abs(out["image"].numpy()).max() <= 1
    mu, logvar = model.encoder(batch["image"])
    assert tuple(mu.shape) == tuple(logvar.shape) == (2, cfg.model.z_dim)
    d_out = model.discriminator(jt.concat([batch["seg"], batch["image"]], dim=1))
    assert len(d_out) == cfg.model.d_scales
    assert len(d_out[0]) == cfg.model.d_layers + 1 and d_out[0][-1].shape[1] == 1
    assert d_out[1][-1].shape[2] < d_out[0][-1].shape[2]  # second scale sees a smaller input


def test_without_vae_the_label_map_is_the_input():
    cfg = tiny_config("model.use_vae=false", *NO_STYLE)
    model = GANModel(cfg, H, W, log=lambda m: None)
    assert model.encoder is None and "encoder" not in model.networks()
    batch = _vars()
    assert tuple(model.generate(batch["seg"], batch["image"])["refined"].shape) == (2, 3, H, W)


def test_spectral_norm_divides_by_the_largest_singular_value():
    conv = SNConv2d(3, 5, 3, padding=1)
    for _ in range(30):  # power iteration converges during training forwards
        conv(jt.ones((1, 3, 4, 4)))
    w = conv.weight.numpy().reshape(5, -1)
    sigma = np.linalg.svd(w, compute_uv=False)[0]
    conv.eval()
    np.testing.assert_allclose(conv._sigma().numpy()[0], sigma, rtol=1e-3)
    assert conv.weight_u.is_stop_grad()


def test_a_few_steps_lower_the_losses():
    cfg = tiny_config("train.lr_g=0.002", "train.lr_d=0.002", "loss.edge_gan=0",
                      "loss.contrastive=0", *NO_COLOUR_LOSSES)
    trainer = Trainer(cfg, jt, H, W, log=lambda m: None)
    batch = _vars()
    history = [trainer.train_step(batch, 1.0) for _ in range(12)]
    first, last = history[0], history[-1]
    assert set(first) == {"g_gan", "g_feat", "g_kld", "g_edge", "d_real", "d_fake"}
    assert last["g_edge"] < first["g_edge"]
    assert last["g_feat"] < first["g_feat"]  # G moves toward the real images in D feature space
    # the discriminator alone, on fixed fakes, separates them from the real images
    _, outputs = trainer.model.generator_step(batch)
    d_hist = []
    for _ in range(8):
        d = trainer.model.discriminator_step(batch, outputs)
        d_hist.append(float((d["d_real"] + d["d_fake"]).item()))
        trainer.opt_d.step(trainer.model.weighted_sum(d))
    assert d_hist[-1] < d_hist[0]


def test_labels_to_onehot():
    labels = np.array([[[0, 28], [3, 3]]], np.uint8)
    onehot = labels_to_onehot(labels, 29)
    assert onehot.shape == (1, 29, 2, 2) and onehot.sum(1).min() == 1
    assert onehot[0, 28, 0, 1] == 1 and onehot[0, 3, 1, 0] == 1
    with pytest.raises(ValueError):
        labels_to_onehot(np.full((1, 1, 1), 29, np.uint8), 29)


def test_vgg_weights_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    arrays = {}
    for index, cin, cout in VGG19_CONVS:
        arrays[f"features.{index}.weight"] = rng.normal(0, 0.05, (cout, cin, 3, 3)).astype(np.float32)
        arrays[f"features.{index}.bias"] = np.zeros(cout, np.float32)
    good = tmp_path / "vgg19.npz"
    np.savez(good, **arrays)
    net = load_vgg19(good)
    np.testing.assert_array_equal(net.convs[1].weight.numpy(), arrays["features.2.weight"])
    arrays["features.28.weight"] = arrays["features.28.weight"][:10]
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ConfigError, match="features.28.weight"):
        load_vgg19(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_vgg19(tmp_path / "none.npz")
    # without a weights file the run says (once) that the perceptual term is off
    notes = []
    GANModel(tiny_config(), H, W, log=notes.append)
    assert len(notes) == 1 and "perceptual" in notes[0]
    notes.clear()
    model = GANModel(tiny_config(f'loss.vgg_weights="{good}"'), H, W, log=notes.append)
    assert not notes
    losses, _ = model.generator_step(_vars())
    assert "g_vgg" in losses and float(losses["g_vgg"].item()) > 0
