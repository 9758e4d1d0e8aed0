"""pipeline/model/ops.py's 2x nearest upsampling and batched matmul give the values and
gradients of numpy's formulas and of the Jittor ops they replace, in the whole generator and its
losses too; the networks' leaky ReLU (jittor.nn's) against numpy."""

from __future__ import annotations

import numpy as np

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
    from pipeline.model.ganmodel import GANModel
    from pipeline.train import batch_to_vars

    from .model_testutil import tiny_config

    cfg = tiny_config("model.hint_dropout=0.0", "model.hint_texture=0",
                      "model.hint_texture_absent=0", "model.noise=false")
    h, w = cfg.data.height, cfg.data.width
    images, labels, edges = _arrays(5, h, w)

    def run():
        jt.set_global_seed(0, different_seed_for_mpi=False)
        np.random.seed(0)
        model = GANModel(cfg, h, w, log=lambda m: None)
        batch = batch_to_vars(jt, {"images": images, "labels": labels, "edges": edges}, 29)
        terms, _ = model.generator_step(batch)
        params = model.generator.parameters()
        grads = jt.grad(sum(terms.values()), params)
        return {k: v.item() for k, v in terms.items()}, [g.numpy() for g in grads]

    ours_terms, ours = run()
    for module in (ops, hints, style):
        monkeypatch.setattr(module, "bmm", jt.matmul)
    theirs_terms, theirs = run()
    assert {"g_class_colour", "g_gan"} <= set(ours_terms) and set(ours_terms) == set(theirs_terms)
    for k in ours_terms:
        assert abs(ours_terms[k] - theirs_terms[k]) <= 1e-5 * max(1.0, abs(theirs_terms[k])), k
    assert len(ours) == len(theirs) > 10
    worst = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs))
    scale = max(float(np.abs(b).max()) for b in theirs)
    assert worst <= 1e-5 * scale, (worst, scale)


def _arrays(seed: int, h: int, w: int):
    """(images, labels, edges) of a 2-image batch: random classes, class 5 below the middle."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 29, (2, h, w)).astype(np.uint8)
    labels[:, h // 2:] = 5
    images = rng.integers(0, 255, (2, h, w, 3)).astype(np.uint8)
    edges = np.zeros((2, h, w), np.uint8)
    edges[:, h // 2] = 255
    return images, labels, edges
