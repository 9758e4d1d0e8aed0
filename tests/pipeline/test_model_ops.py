"""pipeline/model/ops.py: the networks' leaky ReLU and 2x nearest upsampling give the values and
gradients of numpy's formulas and of jittor.nn's own ops, which they replace."""

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
    for fn in (ops.leaky_relu, nn.leaky_relu, lambda v, s: ops.LeakyReLU(s)(v)):
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
