#include <dnnl.hpp>

#include "var.h"
#include "landscape_conv_op.h"

using namespace dnnl;

namespace jittor {

#ifndef JIT

LandscapeConvOp::LandscapeConvOp(Var* x, Var* w, int strideh, int stridew, int paddingh, int paddingw)
    : x(x), w(w), strideh(strideh), stridew(stridew), paddingh(paddingh), paddingw(paddingw) {
    y = create_output(nullptr, x->dtype());
}

void LandscapeConvOp::infer_shape() {
    ASSERTop(x->shape.size(),==,4);
    ASSERTop(w->shape.size(),==,4);
    ASSERTop(w->shape[1],==,x->shape[1]);
    int64 yh = (x->shape[2] + paddingh * 2 - w->shape[2]) / strideh + 1;
    int64 yw = (x->shape[3] + paddingw * 2 - w->shape[3]) / stridew + 1;
    y->set_shape(NanoVector(x->shape[0], w->shape[0], yh, yw));
}

void LandscapeConvOp::jit_prepare(JK& jk) {
    jk << "«T:" << x->dtype();
}

#else // JIT
#ifdef JIT_cpu
void LandscapeConvOp::jit_run() {
    using tag = memory::format_tag;
    using dt = memory::data_type;
    engine eng(engine::kind::cpu, 0);
    stream s(eng);
    const auto& xs = x->shape;
    const auto& ws = w->shape;
    const auto& ys = y->shape;
    memory::dims src_d = {xs[0], xs[1], xs[2], xs[3]};
    memory::dims wei_d = {ws[0], ws[1], ws[2], ws[3]};
    memory::dims dst_d = {ys[0], ys[1], ys[2], ys[3]};
    memory::dims strides = {strideh, stridew};
    memory::dims pad_l = {paddingh, paddingw};
    memory::dims pad_r = {(ys[2] - 1) * strideh + ws[2] - xs[2] - paddingh,
                          (ys[3] - 1) * stridew + ws[3] - xs[3] - paddingw};
    auto desc = convolution_forward::desc(prop_kind::forward_training,
        algorithm::convolution_direct,
        memory::desc(src_d, dt::f32, tag::any), memory::desc(wei_d, dt::f32, tag::any),
        memory::desc(dst_d, dt::f32, tag::any), strides, pad_l, pad_r);
    auto pd = convolution_forward::primitive_desc(desc, eng);
    memory user_src({src_d, dt::f32, tag::nchw}, eng, x->mem_ptr);
    memory user_wei({wei_d, dt::f32, tag::oihw}, eng, w->mem_ptr);
    memory user_dst({dst_d, dt::f32, tag::nchw}, eng, y->mem_ptr);
    memory src = user_src, wei = user_wei, dst = user_dst;
    if (pd.src_desc() != user_src.get_desc()) {
        src = memory(pd.src_desc(), eng);
        reorder(user_src, src).execute(s, user_src, src);
    }
    if (pd.weights_desc() != user_wei.get_desc()) {
        wei = memory(pd.weights_desc(), eng);
        reorder(user_wei, wei).execute(s, user_wei, wei);
    }
    if (pd.dst_desc() != user_dst.get_desc())
        dst = memory(pd.dst_desc(), eng);
    convolution_forward(pd).execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
    if (dst != user_dst)
        reorder(dst, user_dst).execute(s, dst, user_dst);
    s.wait();
}
#endif
#endif // JIT

} // jittor
