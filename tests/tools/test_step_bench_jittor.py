"""The cheaper Jittor ops tools/step_bench.py --jittor-proposals measures: same values and
gradients as the ops pipeline/model uses now, against numpy."""

from __future__ import annotations

import numpy as np

from pipeline.jt_env import setup_jittor

jt = setup_jittor("cpu")

from jittor import nn  # noqa: E402

from tools.step_bench_jittor import fast_leaky_relu, op_kind, upsample2x_nearest  # noqa: E402


def test_fast_leaky_relu_matches_numpy_values_and_gradient():
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 7)).astype(np.float32)
    x[0, 0, 0, :3] = 0.0  # the kink: both give slope 0.2 there
    w = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    for fn in (fast_leaky_relu, nn.leaky_relu):
        xv = jt.array(x)
        y = fn(xv, 0.2)
        (g,) = jt.grad((y * jt.array(w)).sum(), [xv])
        np.testing.assert_allclose(y.numpy(), np.where(x > 0, x, 0.2 * x), rtol=1e-6)
        np.testing.assert_allclose(g.numpy(), np.where(x > 0, 1.0, 0.2) * w, rtol=1e-6)


def test_upsample2x_nearest_matches_numpy_and_interpolate():
    x = np.random.default_rng(2).normal(size=(2, 3, 5, 7)).astype(np.float32)
    ref = x.repeat(2, axis=2).repeat(2, axis=3)
    xv = jt.array(x)
    y = upsample2x_nearest(xv)
    np.testing.assert_array_equal(y.numpy(), ref)
    np.testing.assert_array_equal(nn.interpolate(xv, scale_factor=2, mode="nearest").numpy(), ref)
    w = np.random.default_rng(3).normal(size=ref.shape).astype(np.float32)
    (g,) = jt.grad((y * jt.array(w)).sum(), [xv])
    np.testing.assert_allclose(g.numpy(), w.reshape(2, 3, 5, 2, 7, 2).sum(axis=(3, 5)), rtol=1e-5, atol=1e-6)


def test_profile_rows_are_named_by_their_ops():
    assert op_kind("mkl_conv_backward_w«Txd:float32«Tyd:float32") == "mkl_conv_backward_w"
    name = ("«opkey0:broadcast_to«Tx:float32«DIM=7«opkey1:binary«Tx:float32«OP:multiply"
            "«opkey2:reduce«Tx:float32«OP:add«DIM=7«JIT:1")
    assert op_kind(name) == "broadcast_to+binary(multiply)+reduce(add)"
