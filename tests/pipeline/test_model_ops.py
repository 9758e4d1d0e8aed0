"""pipeline/model/ops.py's 2x nearest upsampling, batched matmul, fused instance norm +
modulation + leaky ReLU and convolution op (all three passes, direct and Winograd) give the
values and gradients of numpy's formulas and of the Jittor ops they replace, in the whole
generator, discriminator and losses too; the networks' leaky ReLU (jittor.nn's) against numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.jt_env import setup_jittor

jt = setup_jittor("cpu")

from jittor import nn  # noqa: E402

from pipeline.model import ops  # noqa: E402


def test_leaky_relu_matches_numpy_values_and_gradient():
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 7)).astype(np.float32)
    x[0, 0, 0, :3] = 0.0  # the kink: both give slope 0.2 there
    w = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    for fn in (nn.leaky_relu, lambda v, s: nn.LeakyReLU(s)(v)):
        xv = jt.array(x)
        y = fn(xv, 0.2)
        (g,) = jt.grad((y * jt.array(w)).sum(), [xv])
        np.testing.assert_array_equal(y.numpy(), np.where(x > 0, x, np.float32(0.2) * x))
        np.testing.assert_allclose(g.numpy(), np.where(x > 0, 1.0, 0.2) * w, rtol=1e-6)


def test_upsample2x_matches_numpy_and_interpolate():
    x = np.random.default_rng(2).normal(size=(2, 3, 5, 7)).astype(np.float32)
    ref = x.repeat(2, axis=2).repeat(2, axis=3)
    xv = jt.array(x)
    y = ops.upsample2x(xv)
    np.testing.assert_array_equal(y.numpy(), ref)
    np.testing.assert_array_equal(nn.interpolate(xv, scale_factor=2, mode="nearest").numpy(), ref)
    w = np.random.default_rng(3).normal(size=ref.shape).astype(np.float32)
    (g,) = jt.grad((y * jt.array(w)).sum(), [xv])
    np.testing.assert_allclose(g.numpy(), w.reshape(2, 3, 5, 2, 7, 2).sum(axis=(3, 5)), rtol=1e-5, atol=1e-6)


def test_generator_gradients_equal_those_with_jittor_nn_ops(monkeypatch):
    """The whole generator's loss gradients with ops.upsample2x and with nn.interpolate: per-op
    equality is not enough (a cheaper leaky ReLU passed the per-op check and still changed
    the generator's gradients), so the network's own backward pass is compared. Batch-norm
    SPADE, as in the 2-ranks test, where that difference showed."""
    from pipeline.model.ganmodel import GANModel
    from pipeline.train import batch_to_vars

    from .model_testutil import NO_STYLE, NO_TEXTURE, tiny_config

    cfg = tiny_config("model.use_vae=false", *NO_STYLE, *NO_TEXTURE, "model.hint_dropout=0.0",
                      "loss.contrastive=0", 'model.param_free_norm="batch"')
    h, w = cfg.data.height, cfg.data.width
    images, labels, edges = _arrays(0, h, w)

    def gradients():
        jt.set_global_seed(0, different_seed_for_mpi=False)
        model = GANModel(cfg, h, w, log=lambda m: None)
        batch = batch_to_vars(jt, {"images": images, "labels": labels, "edges": edges}, 29)
        terms, _ = model.generator_step(batch)
        params = model.generator.parameters()
        return [g.numpy() for g in jt.grad(sum(terms.values()), params)]

    ours = gradients()
    monkeypatch.setattr(ops, "upsample2x", lambda x: nn.interpolate(x, scale_factor=2, mode="nearest"))
    theirs = gradients()
    assert len(ours) == len(theirs) > 10
    worst = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs))
    scale = max(float(np.abs(b).max()) for b in theirs)
    assert worst <= 1e-5 * scale, (worst, scale)


def test_bmm_matches_numpy_values_and_gradients():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(3, 5, 40)).astype(np.float32)
    b = rng.normal(size=(3, 40, 2)).astype(np.float32)
    w = rng.normal(size=(3, 5, 2)).astype(np.float32)
    av, bv = jt.array(a), jt.array(b)
    y = ops.bmm(av, bv)
    np.testing.assert_allclose(y.numpy(), a @ b, rtol=1e-5, atol=1e-5)
    ga, gb = jt.grad((y * jt.array(w)).sum(), [av, bv])
    np.testing.assert_allclose(ga.numpy(), w @ b.transpose(0, 2, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gb.numpy(), a.transpose(0, 2, 1) @ w, rtol=1e-5, atol=1e-5)


def test_generator_losses_and_gradients_equal_those_with_jittor_matmul(monkeypatch):
    """Every generator loss term and the generator's gradients with ops.bmm (semantic-
    preserving module, class palette, hints, class colour loss) and with Jittor's batched
    matmul: the same up to float rounding."""
    from pipeline.model import hints, style

    from .model_testutil import tiny_config

    cfg = tiny_config("model.hint_dropout=0.0", "model.hint_texture=0",
                      "model.hint_texture_absent=0", "model.noise=false")
    ours_terms, ours = _model_run(cfg, 5)
    for module in (ops, hints, style):
        monkeypatch.setattr(module, "bmm", jt.matmul)
    theirs_terms, theirs = _model_run(cfg, 5)
    assert {"g_class_colour", "g_gan"} <= set(ours_terms)
    _assert_same(ours_terms, ours, theirs_terms, theirs, 1e-5)


def _norm_act_numpy(x, gamma, beta, shift, slope, eps=1e-5):
    """The fused op's definition in float64 numpy."""
    x = x.astype(np.float64)
    m = x.mean(axis=(2, 3), keepdims=True)
    xh = (x - m) / np.sqrt(x.var(axis=(2, 3), keepdims=True) + eps)
    b, c = x.shape[:2]
    gs = shift[:, 0].reshape(b, c, 1, 1) if shift is not None else 0.0
    bs = shift[:, 1].reshape(b, c, 1, 1) if shift is not None else 0.0
    pre = xh * (1 + (0.0 if gamma is None else gamma) + gs) + (0.0 if beta is None else beta) + bs
    return np.where(pre > 0, pre, slope * pre)


CASES = [((2, 3, 5, 7), True, True, 0.2), ((2, 3, 5, 7), False, False, 0.2),
         ((3, 4, 12, 16), True, False, 1.0), ((2, 5, 9, 4), False, True, 1.0)]


def test_norm_act_matches_numpy_and_the_composed_jittor_ops(monkeypatch):
    """Fused vs numpy (values, float64) and vs the composed Jittor ops (values and the
    gradients of every input), with and without per-pixel maps, the per-plane shift and the
    leaky ReLU; a constant plane (zero variance) and pre-activations at exactly 0 included."""
    rng = np.random.default_rng(6)
    for shape, maps, shift, slope in CASES:
        b, c = shape[:2]
        x = (rng.normal(size=shape) * 2 + 0.5).astype(np.float32)
        x[0, 0] = 0.75  # a constant plane: normalised to 0 exactly
        g, be = (rng.normal(size=shape).astype(np.float32) for _ in range(2))
        if maps:
            be[0, 0, 0, :2] = 0.0  # with the zero plane and no shift: pre-activation 0, the kink
        sh = rng.normal(size=(b, 2, c)).astype(np.float32)
        w = rng.normal(size=shape).astype(np.float32)
        args = (g if maps else None, be if maps else None, sh if shift else None)
        ref = _norm_act_numpy(x, *args, slope)
        results = []
        for fused in (True, False):
            monkeypatch.setattr(ops, "FUSED_NORM", fused)
            xv, gv, bv, sv = map(jt.array, (x, g, be, sh))
            y = ops.norm_act(xv, gv if maps else None, bv if maps else None, sv if shift else None,
                             slope)
            params = [xv] + ([gv, bv] if maps else []) + ([sv] if shift else [])
            grads = jt.grad((y * jt.array(w)).sum(), params)
            results.append([y.numpy()] + [v.numpy() for v in grads])
        fused_out, composed_out = results
        np.testing.assert_allclose(fused_out[0], ref, rtol=1e-5, atol=2e-5)
        if maps and not shift:  # the kink: slope's share of the gradient, as nn.leaky_relu's
            np.testing.assert_array_equal(fused_out[0][0, 0, 0, :2], 0.0)
        assert len(fused_out) == len(composed_out) == 2 + 2 * maps + shift
        # the constant plane's x gradient: the composed ops' variance (E[x^2] - E[x]^2) is a
        # rounding error there, not 0, and their 1/std with it; against float64 numpy instead
        # (xh = 0: dx = (dxh - mean(dxh)) / sqrt(eps), dxh = w * (1 + gamma + gs), slope 1 or
        # pre-activations of either sign)
        k = 1 + (g[0, 0] if maps else 0.0) + (sh[0, 0, 0] if shift else 0.0)
        act = np.where(ref[0, 0] > 0, 1.0, slope)  # the leaky ReLU's derivative (slope 1: none)
        dxh = w[0, 0].astype(np.float64) * k * act
        np.testing.assert_allclose(fused_out[1][0, 0], (dxh - dxh.mean()) / np.sqrt(1e-5), rtol=1e-4,
                                   atol=1e-3)
        composed_out[1][0, 0] = fused_out[1][0, 0]
        for a, r in zip(fused_out, composed_out):
            np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-4 * float(np.abs(r).max()))


def test_norm_act_rejects_half_maps_and_falls_back_off_cpu_shapes():
    x = jt.array(np.random.default_rng(7).normal(size=(2, 3, 4, 5)).astype(np.float32))
    with pytest.raises(ValueError, match="gamma and beta together"):
        ops.norm_act(x, gamma=x)
    x3 = jt.array(np.random.default_rng(8).normal(size=(2, 3, 20)).astype(np.float32))
    y = ops.norm_act(x3, slope=0.2)  # not (B, C, H, W): the composed ops
    ref = _norm_act_numpy(x3.numpy()[..., None], None, None, None, 0.2)[..., 0]
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-4, atol=1e-4)


def _conv_numpy(x, wt, b, stride: int, pad: int, g):
    """float64 numpy: the convolution's output, and the gradients of sum(output * g) with
    respect to the input and the weights, each a sum over the padded input's windows."""
    x, wt, g = (v.astype(np.float64) for v in (x, wt, g))
    k = wt.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = g.shape[2:]
    y = np.zeros(g.shape)
    dxp, dw = np.zeros(xp.shape), np.zeros(wt.shape)
    for i in range(k):
        for j in range(k):
            win = xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
            y += np.einsum("nchw,oc->nohw", win, wt[:, :, i, j])
            dw[:, :, i, j] = np.einsum("nchw,nohw->oc", win, g)
            dxp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += np.einsum("nohw,oc->nchw", g, wt[:, :, i, j])
    y += 0.0 if b is None else b.reshape(1, -1, 1, 1)
    return y, dxp[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]], dw


def test_conv2d_matches_numpy_and_jittor_conv_values_and_gradients(monkeypatch):
    """ops.conv2d (the project's op, all three passes) against float64 numpy and nn.conv2d, at
    the shapes the networks use: 3x3 same padding (small: the direct algorithm; 24x32 with 16
    and 40 channels: Winograd, the weight gradient's too or not), the discriminator's 4x4
    stride 2 padding 2 and stride 1, the 1x1 shortcut, with and without bias, odd sizes."""
    rng = np.random.default_rng(10)
    for n, c, o, h, w, k, stride, pad, bias in [(2, 5, 7, 9, 11, 3, 1, 1, True),
                                                 (2, 16, 8, 24, 32, 3, 1, 1, True),
                                                 (1, 40, 1300, 24, 32, 3, 1, 1, False),
                                                 (2, 6, 8, 13, 10, 4, 2, 2, False),
                                                 (1, 6, 4, 7, 9, 4, 1, 2, True),
                                                 (3, 4, 3, 8, 8, 1, 1, 0, False)]:
        x = rng.normal(size=(n, c, h, w)).astype(np.float32)
        wt = (rng.normal(size=(o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
        b = rng.normal(size=(o,)).astype(np.float32) if bias else None
        results = []
        for ours in (True, False):
            monkeypatch.setattr(ops, "TRAINING_CONV", ours)
            xv, wv = jt.array(x), jt.array(wt)
            bv = jt.array(b) if bias else None
            y = ops.conv2d(xv, wv, bv, stride=stride, padding=pad)
            g = np.random.default_rng(11).normal(size=y.shape).astype(np.float32)
            grads = jt.grad((y * jt.array(g)).sum(), [xv, wv] + ([bv] if bias else []))
            results.append([y.numpy()] + [v.numpy() for v in grads])
        for a, r in zip(*results):
            np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-4 * float(np.abs(r).max()))
        for a, r in zip(results[0], _conv_numpy(x, wt, b, stride, pad, g)):
            np.testing.assert_allclose(a, r, rtol=1e-4, atol=2e-5 * float(np.abs(r).max()))


def test_winograd_is_used_where_it_measured_faster_and_falls_back_to_direct():
    """winograd_passes: the measured rule (docs/benchmarks.md); the op gives the direct
    algorithm's result, bit for bit, where oneDNN has no Winograd kernel (a 4x4 stride-2
    conv), and on an AVX-512 CPU a Winograd result that differs from the direct one by
    rounding only."""
    assert ops.winograd_passes((4, 16, 24, 32), (64, 16, 3, 3), (1, 1), (1, 1)) == (True, True, True)
    assert ops.winograd_passes((1, 256, 24, 32), (256, 256, 3, 3), (1, 1), (1, 1)) == (True, True, False)
    assert ops.winograd_passes((4, 8, 96, 128), (8, 8, 3, 3), (1, 1), (1, 1)) == (False,) * 3
    assert ops.winograd_passes((4, 64, 12, 16), (64, 64, 3, 3), (1, 1), (1, 1)) == (False,) * 3
    assert ops.winograd_passes((4, 64, 96, 128), (64, 64, 4, 4), (2, 2), (1, 1)) == (False,) * 3
    op = ops._conv_ops().landscape_conv
    rng = np.random.default_rng(14)
    x = jt.array(rng.normal(size=(2, 16, 24, 32)).astype(np.float32))
    w4 = jt.array(rng.normal(size=(8, 16, 4, 4)).astype(np.float32))
    np.testing.assert_array_equal(op(x, w4, 0, 0, 0, 2, 2, 2, 2, 1).numpy(),
                                  op(x, w4, 0, 0, 0, 2, 2, 2, 2, 0).numpy())
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " avx512f" in flags:
        w3 = jt.array(rng.normal(size=(8, 16, 3, 3)).astype(np.float32))
        wino, direct = op(x, w3, 0, 0, 0, 1, 1, 1, 1, 1).numpy(), op(x, w3, 0, 0, 0, 1, 1, 1, 1, 0).numpy()
        assert not np.array_equal(wino, direct)
        np.testing.assert_allclose(wino, direct, rtol=1e-4, atol=1e-5 * float(np.abs(direct).max()))


def test_conv2d_falls_back_to_jittor_when_its_op_does_not_compile(monkeypatch, capsys):
    def broken():
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(ops, "_compile_conv_ops", broken)
    monkeypatch.setattr(ops, "_CONV_MODULE", [])
    x = jt.array(np.random.default_rng(12).normal(size=(1, 2, 5, 5)).astype(np.float32))
    w = jt.array(np.random.default_rng(13).normal(size=(3, 2, 3, 3)).astype(np.float32))
    np.testing.assert_array_equal(ops.conv2d(x, w, padding=1).numpy(), jt.nn.conv2d(x, w, padding=1).numpy())
    assert "did not compile (no compiler here); using Jittor's nn.conv2d" in capsys.readouterr().err
    assert ops._CONV_MODULE == [None]


def test_generator_and_discriminator_with_fused_norm_equal_the_composed_ops(monkeypatch):
    """The whole generator's loss terms and gradients, and the discriminator's, with the fused
    kernel and the project's convolution and with the composed Jittor ops and nn.conv2d
    (instance-norm SPADE with the style code's modulation, as the demo trains): the same up to
    float rounding."""
    from .model_testutil import tiny_config

    cfg = tiny_config("model.hint_dropout=0.0", "model.noise=false", "model.hint_texture=0",
                      "model.hint_texture_absent=0")
    assert cfg.model.param_free_norm == "instance" and cfg.model.style_modulation
    ours_terms, ours = _model_run(cfg, 9, discriminator=True)
    monkeypatch.setattr(ops, "FUSED_NORM", False)
    monkeypatch.setattr(ops, "TRAINING_CONV", False)
    theirs_terms, theirs = _model_run(cfg, 9, discriminator=True)
    assert "d" in ours_terms and len(ours_terms) > 3
    _assert_same(ours_terms, ours, theirs_terms, theirs, 1e-4)


def _model_run(cfg, seed: int, discriminator: bool = False):
    """A fresh seeded model's generator loss terms and generator gradients on a fixed batch;
    with `discriminator`, also a discriminator output ("d") and its gradients."""
    from pipeline.model.ganmodel import GANModel
    from pipeline.train import batch_to_vars

    h, w = cfg.data.height, cfg.data.width
    images, labels, edges = _arrays(seed, h, w)
    jt.set_global_seed(0, different_seed_for_mpi=False)
    np.random.seed(0)
    model = GANModel(cfg, h, w, log=lambda m: None)
    batch = batch_to_vars(jt, {"images": images, "labels": labels, "edges": edges}, 29)
    terms, _ = model.generator_step(batch)
    terms = dict(terms)
    grads = jt.grad(sum(terms.values()), model.generator.parameters())
    if discriminator:
        feats = model.discriminator(jt.concat([batch["seg"], batch["image"]], dim=1))
        terms["d"] = sum((f ** 2).mean() for scale in feats for f in scale)
        grads = grads + jt.grad(terms["d"], model.discriminator.parameters())
    return {k: v.item() for k, v in terms.items()}, [g.numpy() for g in grads]


def _assert_same(ours_terms, ours, theirs_terms, theirs, tol: float):
    """Loss terms equal to `tol` (relative, or absolute below 1); gradients equal to `tol` of
    the largest gradient value."""
    assert set(ours_terms) == set(theirs_terms)
    for k in ours_terms:
        assert abs(ours_terms[k] - theirs_terms[k]) <= tol * max(1.0, abs(theirs_terms[k])), k
    assert len(ours) == len(theirs) > 10
    worst = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs))
    scale = max(float(np.abs(b).max()) for b in theirs)
    assert worst <= tol * scale, (worst, scale)


def _arrays(seed: int, h: int, w: int):
    """(images, labels, edges) of a 2-image batch: random classes, class 5 below the middle."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 29, (2, h, w)).astype(np.uint8)
    labels[:, h // 2:] = 5
    images = rng.integers(0, 255, (2, h, w, 3)).astype(np.uint8)
    edges = np.zeros((2, h, w), np.uint8)
    edges[:, h // 2] = 255
    return images, labels, edges
