// The project's CPU convolution forward op (pipeline/model/ops.py's conv2d): NCHW input, OIHW
// weights, float32, no groups or dilation; oneDNN's training propagation kind, where Jittor's
// own mkl_conv asks for inference (see ops.py for why).
#pragma once
#include "op.h"

namespace jittor {

struct LandscapeConvOp : Op {
    Var* x, * w, * y;
    int strideh, stridew, paddingh, paddingw;
    LandscapeConvOp(Var* x, Var* w, int strideh, int stridew, int paddingh, int paddingw);

    const char* name() const override { return "landscape_conv"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

} // jittor
