#include <dnnl.hpp>

#include "var.h"
#include "landscape_conv_op.h"

using namespace dnnl;

namespace jittor {

#ifndef JIT

LandscapeConvOp::LandscapeConvOp(Var* a, Var* b, int pass, int oh, int ow, int strideh, int stridew,
                                 int paddingh, int paddingw, int winograd)
    : a(a), b(b), pass(pass), oh(oh), ow(ow), strideh(strideh), stridew(stridew),
      paddingh(paddingh), paddingw(paddingw), winograd(winograd) {
    ASSERT(pass >= 0 && pass <= 2) << "landscape_conv: pass is 0 (forward), 1 (data) or 2 (weights)";
    y = create_output(nullptr, a->dtype());
}

void LandscapeConvOp::infer_shape() {
    ASSERTop(a->shape.size(),==,4);
    ASSERTop(b->shape.size(),==,4);
    if (pass == 0) {  // a = x, b = w
        ASSERTop(b->shape[1],==,a->shape[1]);
        int64 yh = (a->shape[2] + paddingh * 2 - b->shape[2]) / strideh + 1;
        int64 yw = (a->shape[3] + paddingw * 2 - b->shape[3]) / stridew + 1;
        y->set_shape(NanoVector(a->shape[0], b->shape[0], yh, yw));
    } else if (pass == 1) {  // a = w, b = dy
        ASSERTop(b->shape[1],==,a->shape[0]);
        y->set_shape(NanoVector(b->shape[0], a->shape[1], oh, ow));
    } else {  // a = x, b = dy
        ASSERTop(b->shape[0],==,a->shape[0]);
        y->set_shape(NanoVector(b->shape[1], a->shape[1], oh, ow));
    }
}

void LandscapeConvOp::jit_prepare(JK& jk) {
    jk << "«T:" << a->dtype();
}

#else // JIT
#ifdef JIT_cpu
void LandscapeConvOp::jit_run() {
    using tag = memory::format_tag;
    using dt = memory::data_type;
    engine eng(engine::kind::cpu, 0);
    stream s(eng);
    // x, w, dy: the three tensors of the convolution, whichever two are given
    Var* xv = pass == 1 ? y : a;
    Var* wv = pass == 0 ? b : pass == 1 ? a : y;
    Var* yv = pass == 0 ? y : b;
    const auto& xs = xv->shape;
    const auto& ws = wv->shape;
    const auto& ys = yv->shape;
    memory::dims src_d = {xs[0], xs[1], xs[2], xs[3]};
    memory::dims wei_d = {ws[0], ws[1], ws[2], ws[3]};
    memory::dims dst_d = {ys[0], ys[1], ys[2], ys[3]};
    memory::dims strides = {strideh, stridew};
    memory::dims pad_l = {paddingh, paddingw};
    memory::dims pad_r = {(ys[2] - 1) * strideh + ws[2] - xs[2] - paddingh,
                          (ys[3] - 1) * stridew + ws[3] - xs[3] - paddingw};
    memory::desc src_any(src_d, dt::f32, tag::any), wei_any(wei_d, dt::f32, tag::any),
        dst_any(dst_d, dt::f32, tag::any);
    memory user_x({src_d, dt::f32, tag::nchw}, eng, xv->mem_ptr);
    memory user_w({wei_d, dt::f32, tag::oihw}, eng, wv->mem_ptr);
    memory user_y({dst_d, dt::f32, tag::nchw}, eng, yv->mem_ptr);
    // an input in the layout the primitive wants; an output's buffer in it, copied back after
    auto in = [&](memory& user, const memory::desc& want) {
        if (want == user.get_desc()) return user;
        memory m(want, eng);
        reorder(user, m).execute(s, user, m);
        return m;
    };
    auto out = [&](memory& user, const memory::desc& want) {
        return want == user.get_desc() ? user : memory(want, eng);
    };
    auto forward = [&](algorithm alg) {
        return convolution_forward::primitive_desc(convolution_forward::desc(
            prop_kind::forward_training, alg, src_any, wei_any, dst_any, strides, pad_l, pad_r), eng);
    };
    // Winograd where asked and implemented here (else oneDNN throws unimplemented), else direct
    algorithm algs[2] = {algorithm::convolution_winograd, algorithm::convolution_direct};
    for (int k = winograd ? 0 : 1; k < 2; k++) {
        algorithm alg = algs[k];
        try {
            auto fpd = forward(alg);
            if (pass == 0) {
                memory x = in(user_x, fpd.src_desc()), w = in(user_w, fpd.weights_desc());
                memory dst = out(user_y, fpd.dst_desc());
                convolution_forward(fpd).execute(s, {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst}});
                if (dst != user_y) reorder(dst, user_y).execute(s, dst, user_y);
            } else if (pass == 1) {
                auto pd = convolution_backward_data::primitive_desc(convolution_backward_data::desc(
                    alg, src_any, wei_any, dst_any, strides, pad_l, pad_r), eng, fpd);
                memory dy = in(user_y, pd.diff_dst_desc()), w = in(user_w, pd.weights_desc());
                memory dx = out(user_x, pd.diff_src_desc());
                convolution_backward_data(pd).execute(s, {{DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, dx}});
                if (dx != user_x) reorder(dx, user_x).execute(s, dx, user_x);
            } else {
                auto pd = convolution_backward_weights::primitive_desc(convolution_backward_weights::desc(
                    alg, src_any, wei_any, dst_any, strides, pad_l, pad_r), eng, fpd);
                memory x = in(user_x, pd.src_desc()), dy = in(user_y, pd.diff_dst_desc());
                memory dw = out(user_w, pd.diff_weights_desc());
                convolution_backward_weights(pd).execute(s, {{DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_DIFF_WEIGHTS, dw}});
                if (dw != user_w) reorder(dw, user_w).execute(s, dw, user_w);
            }
            s.wait();
            return;
        } catch (dnnl::error& e) {
            if (alg == algorithm::convolution_direct || e.status != dnnl_unimplemented) throw;
        }
    }
}
#endif
#endif // JIT

} // jittor
