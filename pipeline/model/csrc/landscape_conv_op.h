// The project's CPU convolution op (pipeline/model/ops.py's conv2d): NCHW data, OIHW weights,
// float32, no groups or dilation, oneDNN's training propagation kind (Jittor's own mkl_conv asks
// for inference; see ops.py for why). One op, three passes:
//   pass 0, forward:          a = x (N, C, H, W),  b = w (O, C, kh, kw)  -> y (N, O, yh, yw)
//   pass 1, backward data:    a = w (O, C, kh, kw), b = dy (N, O, yh, yw) -> dx (N, C, oh, ow)
//   pass 2, backward weights: a = x (N, C, H, W),  b = dy (N, O, yh, yw) -> dw (O, C, oh, ow)
// winograd = 1 asks oneDNN for its Winograd algorithm (3x3, stride 1), and uses the direct one
// where oneDNN has no Winograd implementation for the shape or the CPU.
#pragma once
#include "op.h"

namespace jittor {

struct LandscapeConvOp : Op {
    Var* a, * b, * y;
    int pass, oh, ow, strideh, stridew, paddingh, paddingw, winograd;
    // (Jittor's op maker reads the constructor from one line)
    LandscapeConvOp(Var* a, Var* b, int pass, int oh, int ow, int strideh, int stridew, int paddingh, int paddingw, int winograd);

    const char* name() const override { return "landscape_conv"; }
    void infer_shape() override;
    DECLARE_jit_run;
};

} // jittor
