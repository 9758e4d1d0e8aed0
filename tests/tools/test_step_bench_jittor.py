"""tools/step_bench_jittor.py: `--jittor-previous` routes pipeline/model/ops.py back to
jittor.nn's own op (for the networks built after it), and profile rows are named by their ops."""

from __future__ import annotations

from pipeline.jt_env import setup_jittor

jt = setup_jittor("cpu")

from jittor import nn  # noqa: E402

from pipeline.model import ops  # noqa: E402
from tools.step_bench_jittor import apply_previous, op_kind  # noqa: E402


def test_apply_previous_routes_the_upsampling_back_to_jittor_nn(monkeypatch):
    monkeypatch.setattr(ops, "upsample2x", ops.upsample2x)  # restored after the test
    calls = []
    real = nn.interpolate
    monkeypatch.setattr(nn, "interpolate", lambda x, **kw: calls.append("interpolate") or real(x, **kw))
    x = jt.ones((1, 1, 2, 2))
    ops.upsample2x(x)
    assert calls == []
    apply_previous(["upsample"])
    assert ops.upsample2x(x).shape == [1, 1, 4, 4]
    assert calls == ["interpolate"]


def test_profile_rows_are_named_by_their_ops():
    assert op_kind("mkl_conv_backward_w«Txd:float32«Tyd:float32") == "mkl_conv_backward_w"
    name = ("«opkey0:broadcast_to«Tx:float32«DIM=7«opkey1:binary«Tx:float32«OP:multiply"
            "«opkey2:reduce«Tx:float32«OP:add«DIM=7«JIT:1")
    assert op_kind(name) == "broadcast_to+binary(multiply)+reduce(add)"


def test_apply_previous_winograd_keeps_the_direct_algorithm(monkeypatch):
    monkeypatch.setattr(ops, "WINOGRAD", ops.WINOGRAD)  # restored after the test
    layer = ((1, 64, 48, 64), (64, 64, 3, 3), (1, 1), (1, 1))
    assert ops.winograd_passes(*layer) == (True, True, True)
    apply_previous(["winograd"])
    assert ops.winograd_passes(*layer) == (False, False, False)
