"""Cheaper Jittor formulations of ops the networks and losses use at every step.

- `upsample2x(x)`: 2x nearest upsampling as an integer-index reindex, where `nn.interpolate`
  computes float source coordinates and floors them per element (16 -> 7 ms per demo step
  alone, 113 -> 39 ms at 256x192, docs/benchmarks.md#where-jittor-loses); same values and
  gradients (tests/pipeline/test_model_ops.py).
- `bmm(a, b)`: batched matrix product as one 2-D matmul per image on CPU (see its doc).
- `norm_act(x, gamma, beta, shift, slope)`: instance norm, SPADE's modulation and the leaky
  ReLU as one CPU kernel each way (6-10x the composed ops per call; see below).
- `conv2d(x, w, b, stride, padding)`: the convolution's three passes as the project's own op
  (oneDNN's training kernels instead of Jittor's inference ones, Winograd on the 3x3 layers
  where it measured faster; see below).
- Not here: leaky ReLU as `jt.maximum(x, x * scale)`. It is 2.7x cheaper alone and gives the
  same values, but in the generator's backward pass it gave other gradients than
  `nn.leaky_relu` (max |diff| 0.24 on one weight's gradient, same forward), and it broke the
  2-ranks-equals-1-process check of tests/pipeline/test_mpi_runs.py; the networks use jittor.nn's.
  tests/pipeline/test_model_ops.py checks the whole generator's gradients against jittor.nn's
  ops, which is how such a difference shows.

`tools.step_bench --jittor-previous upsample,fused,conv,winograd` routes `upsample2x` back to
jittor.nn's op, `norm_act` to the composed ops, `conv2d` to `nn.conv2d` or to its direct
algorithm, in a third worker, to measure what each saves in the whole step.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

import jittor as jt
import jittor_utils


def upsample2x(x):
    """= nn.interpolate(x, scale_factor=2, mode="nearest") for (B, C, H, W)."""
    b, c, h, w = x.shape
    return x.reindex([b, c, 2 * h, 2 * w], ["i0", "i1", "i2/2", "i3/2"])


def bmm(a, b):
    """(B, n, m) @ (B, m, k) -> (B, n, k).

    On CPU Jittor computes a batched matmul (and its gradients) as a (B, n, m, k) broadcast
    product summed by its generic fused kernels; one 2-D matmul per image is 2-3x faster at the
    shapes the networks use (B = 4, n or k = the 29 classes, m = every pixel), measured forward
    and backward (docs/benchmarks.md). On CUDA Jittor's own goes to cuBLAS's batched matmul."""
    if jt.flags.use_cuda:
        return jt.matmul(a, b)
    return jt.stack([jt.matmul(a[i], b[i]) for i in range(a.shape[0])])


# ------------------------------------------------------------------ fused instance norm + activation
# The networks' most frequent element-wise chain: SPADE's `instance_norm(x) * (1 + gamma) +
# beta` and the leaky ReLU after it (every SPADE layer but the shortcut's), and the
# discriminator's instance norm + leaky ReLU. Composed from Jittor's ops it is ~8 kernels
# forward and more backward (mean, E[x^2], the normalisation, the modulation, the ternary and
# their gradients), each a pass over the activations; on CPU here it is one kernel each way,
# a few passes over one (b, c) plane at a time while the plane is in cache, planes spread over
# the OpenMP threads. CUDA keeps the composed ops (Jittor fuses them into its own kernels).
# Set FUSED_NORM = False to compute the composed form everywhere (tools.step_bench
# --jittor-previous fused; tests/pipeline/test_model_ops.py compares the two).
FUSED_NORM = True

# Sums over a plane: float within blocks of BLOCK elements (vectorised), double across them.
_NORM_HEADER = """#include <cmath>
#define BLOCK 1024
#define SLOPE {slope!r}f
#define EPS {eps!r}f
#define MAPS {maps}
#if MAPS
#define GMAP(i) g[i]
#define BMAP(i) be[i]
#else
#define GMAP(i) 0.f
#define BMAP(i) 0.f
#endif
"""

# Both kernels: one (b, c) plane per iteration, its x, maps (MAP_G, MAP_B: the kernel's input
# pointers) and shift (input 1) at hand; the loop's body and closing brace follow.
_PLANE = """
const int C = in0_shape1, P = in0_shape0 * in0_shape1;
const int N = in0_shape2 * in0_shape3;
#pragma omp parallel for schedule(static)
for (int p = 0; p < P; p++) {
    const size_t o = (size_t)p * N;
    const float* x = in0_p + o;
#if MAPS
    const float* g = MAP_G + o;
    const float* be = MAP_B + o;
#endif
    const int b = p / C, c = p % C;
    const float gs = 1.f + in1_p[b * 2 * C + c], bs = in1_p[b * 2 * C + C + c];
"""

# inputs: x, shift (B, 2, C): per-plane gamma / beta offsets[, gamma, beta (B, C, H, W)]
# outputs: y, stats (B * C, 2): the plane's mean and 1 / std, kept for the backward pass
_NORM_FWD = "#define MAP_G in2_p\n#define MAP_B in3_p\n" + _PLANE + """
    float* y = out0_p + o;
    double s = 0., v = 0.;
    for (int i0 = 0; i0 < N; i0 += BLOCK) {
        const int i1 = i0 + BLOCK < N ? i0 + BLOCK : N;
        float sb = 0.f;
        for (int i = i0; i < i1; i++) sb += x[i];
        s += sb;
    }
    const float m = (float)(s / N);
    for (int i0 = 0; i0 < N; i0 += BLOCK) {
        const int i1 = i0 + BLOCK < N ? i0 + BLOCK : N;
        float vb = 0.f;
        for (int i = i0; i < i1; i++) { const float d = x[i] - m; vb += d * d; }
        v += vb;
    }
    const float r = (float)(1. / std::sqrt(v / N + (double)EPS));
    out1_p[2 * p] = m;
    out1_p[2 * p + 1] = r;
    for (int i = 0; i < N; i++) {
        const float pre = (x[i] - m) * r * (gs + GMAP(i)) + (bs + BMAP(i));
        y[i] = pre > 0.f ? pre : pre * SLOPE;
    }
}
"""

# inputs: x, shift, stats, dy[, gamma, beta]; outputs: dx, dshift[, dgamma, dbeta]
_NORM_BWD = "#define MAP_G in4_p\n#define MAP_B in5_p\n" + _PLANE + """
    const float* dy = in3_p + o;
#if MAPS
    float* dg = out2_p + o;
    float* db = out3_p + o;
#endif
    const float m = in2_p[2 * p], r = in2_p[2 * p + 1];
    float* dx = out0_p + o;
    double s1 = 0., s2 = 0., sg = 0., sb = 0.;
    for (int i0 = 0; i0 < N; i0 += BLOCK) {
        const int i1 = i0 + BLOCK < N ? i0 + BLOCK : N;
        float t1 = 0.f, t2 = 0.f, tg = 0.f, tb = 0.f;
        for (int i = i0; i < i1; i++) {
            const float xh = (x[i] - m) * r, k = gs + GMAP(i);
            const float pre = xh * k + (bs + BMAP(i));
            const float d = pre > 0.f ? dy[i] : dy[i] * SLOPE;
            const float dxh = d * k;
            t1 += dxh;
            t2 += dxh * xh;
            tg += d * xh;
            tb += d;
#if MAPS
            dg[i] = d * xh;
            db[i] = d;
#endif
            dx[i] = dxh;
        }
        s1 += t1; s2 += t2; sg += tg; sb += tb;
    }
    out1_p[b * 2 * C + c] = (float)sg;
    out1_p[b * 2 * C + C + c] = (float)sb;
    const float a1 = (float)(s1 / N), a2 = (float)(s2 / N);
    for (int i = 0; i < N; i++) dx[i] = r * (dx[i] - a1 - (x[i] - m) * r * a2);
}
"""


class _NormAct(jt.Function):
    """act(instance_norm(x) * (1 + gamma + gs) + beta + bs) on (B, C, H, W) float32, CPU."""

    def __init__(self, slope: float, eps: float, maps: bool):
        self.maps = maps
        self.header = _NORM_HEADER.format(slope=float(slope), eps=float(eps), maps=int(maps))

    def execute(self, x, shift, *maps):
        b, c = x.shape[:2]
        y, stats = jt.code([x.shape, (b * c, 2)], ["float32", "float32"], [x, shift, *maps],
                           cpu_header=self.header, cpu_src=_NORM_FWD)
        self.saved = (x, shift, stats, maps)
        return y

    def grad(self, dy):
        x, shift, stats, maps = self.saved
        shapes = [x.shape, shift.shape] + ([x.shape, x.shape] if self.maps else [])
        return tuple(jt.code(shapes, ["float32"] * len(shapes), [x, shift, stats, dy, *maps],
                             cpu_header=self.header, cpu_src=_NORM_BWD))


def norm_act(x, gamma=None, beta=None, shift=None, slope: float = 1.0, eps: float = 1e-5):
    """leaky_relu(instance_norm(x) * (1 + gamma + gs) + beta + bs, slope), x (B, C, H, W).

    instance_norm is `nn.InstanceNorm2d(C, affine=False)` (biased variance, eps inside the
    root); gamma, beta: per-pixel maps of x's shape, or None (0); shift: (B, 2, C), the
    per-plane offsets [gs, bs] (SPADE's style code), or None (0); slope 1.0: no activation,
    else `nn.leaky_relu(., slope)` (slope at 0 too). The same values and gradients as the
    composed Jittor ops to float rounding (tests/pipeline/test_model_ops.py)."""
    if (gamma is None) != (beta is None):
        raise ValueError("norm_act: give gamma and beta together, or neither")
    if not FUSED_NORM or jt.flags.use_cuda or x.dtype != "float32" or len(x.shape) != 4:
        return _norm_act_composed(x, gamma, beta, shift, slope, eps)
    b, c = x.shape[:2]
    if shift is None:
        shift = jt.zeros((b, 2, c), "float32")
    maps = () if gamma is None else (gamma, beta)
    return _NormAct(slope, eps, bool(maps))(x, shift, *maps)


def _norm_act_composed(x, gamma, beta, shift, slope, eps):
    y = jt.nn.InstanceNorm2d(x.shape[1], eps=eps, affine=False)(x)
    if gamma is not None or shift is not None:
        b, c = x.shape[:2]
        g = 0.0 if gamma is None else gamma
        be = 0.0 if beta is None else beta
        if shift is not None:
            g = g + shift[:, 0].reshape(b, c, 1, 1)
            be = be + shift[:, 1].reshape(b, c, 1, 1)
        y = y * (1 + g) + be
    return y if slope == 1.0 else jt.nn.leaky_relu(y, slope)


# ------------------------------------------------------------------ convolution
# Jittor's CPU convolution (`mkl_conv`) asks oneDNN 2.2 for its inference propagation kind,
# which on AVX-512 picks the `brgconv` kernels in NHWC: every call converts its input and its
# result between NCHW and NHWC. The training kind picks `jit:avx512_common` in the blocked
# layout the backward passes use (docs/benchmarks.md). `conv2d` runs all three passes (forward,
# input gradient, weight gradient) as the project's own op (csrc/landscape_conv_op.cc, compiled
# once per Jittor cache against the oneDNN Jittor ships). Its 3x3 stride-1 layers use oneDNN's
# Winograd algorithm, F(4x4, 3x3), where it measured faster than the direct one
# (`winograd_passes`; its rounding error is checked in tests/pipeline/test_model_ops.py), the
# direct algorithm elsewhere and where oneDNN has no Winograd kernel for the CPU (it needs
# AVX-512). CUDA, other dtypes, groups and dilation keep `nn.conv2d`; TRAINING_CONV = False
# keeps it everywhere (tools.step_bench --jittor-previous conv), WINOGRAD = False keeps the
# direct algorithm (--jittor-previous winograd).
TRAINING_CONV = True
WINOGRAD = True
_CONV_MODULE = []


def _conv_ops():
    """The compiled custom op module (compiled at the first call of a process, then cached by
    Jittor in its custom_ops folder), or None when it does not compile here (then
    `nn.conv2d`, with one message)."""
    if not _CONV_MODULE:
        try:
            _CONV_MODULE.append(_compile_conv_ops())
        except Exception as exc:  # a compiler or oneDNN that differs from Jittor's own build
            print(f"pipeline/model/ops.py: the convolution op did not compile ({exc}); using"
                  " Jittor's nn.conv2d", file=sys.stderr, flush=True)
            _CONV_MODULE.append(None)
    return _CONV_MODULE[0]


def _compile_conv_ops():
    """Compile csrc/landscape_conv_op.* against the oneDNN Jittor uses (its mkl_include_path /
    mkl_lib_path, else the one it unpacked into its home, as Jittor itself looks it up)."""
    inc = os.environ.get("mkl_include_path")
    lib = os.environ.get("mkl_lib_path")
    if not (inc and lib):
        homes = sorted(glob.glob(os.path.join(jittor_utils.home(), ".cache", "jittor", "mkl", "dnnl*")))
        homes = [h for h in homes if os.path.isdir(os.path.join(h, "include"))]
        if not homes:
            raise RuntimeError("Jittor's oneDNN (mkl) folder was not found")
        inc, lib = os.path.join(homes[0], "include"), os.path.join(homes[0], "lib")
    src = Path(__file__).resolve().parent / "csrc"
    return jt.compile_custom_ops([str(src / "landscape_conv_op.h"), str(src / "landscape_conv_op.cc")],
                                 extra_flags=f' -I"{inc}" -L"{lib}" -lmkldnn ')


def winograd_passes(x_shape, w_shape, stride, padding) -> tuple:
    """(forward, input gradient, weight gradient): whether each pass of this convolution uses
    the Winograd algorithm. Measured per layer of the demo and 256x192 networks at 1 and 2
    threads (`python -m tools.conv_layers`, docs/benchmarks.md): Winograd wins on 3x3 stride-1
    layers with at least 16 input channels and 24x32 output pixels per image (1.3-2.3x), loses
    below (its 6x6 tiles and transforms cost more than the saved multiplies); its weight
    gradient also loses, up to 5x, where the channels are many for the pixels (512 -> 256 at
    24x32, 512 -> 512 at 12x16). Over a step's 3x3 layers the rule is within 3% of the best
    choice per pass."""
    if not WINOGRAD or tuple(w_shape[2:]) != (3, 3) or tuple(stride) != (1, 1):
        return (False, False, False)
    pixels = (x_shape[2] + 2 * padding[0] - 2) * (x_shape[3] + 2 * padding[1] - 2)
    if w_shape[1] < 16 or pixels < 24 * 32:
        return (False, False, False)
    return (True, True, w_shape[0] * w_shape[1] <= 64 * pixels)


class _Conv(jt.Function):
    def __init__(self, stride: tuple, padding: tuple):
        self.args = (*stride, *padding)

    def execute(self, x, w):
        self.saved = (x, w)
        self.wino = winograd_passes(x.shape, w.shape, self.args[:2], self.args[2:])
        return _conv_ops().landscape_conv(x, w, 0, 0, 0, *self.args, int(self.wino[0]))

    def grad(self, dy):
        x, w = self.saved
        op = _conv_ops().landscape_conv
        return (op(w, dy, 1, x.shape[2], x.shape[3], *self.args, int(self.wino[1])),
                op(x, dy, 2, w.shape[2], w.shape[3], *self.args, int(self.wino[2])))


def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """= nn.conv2d(x, weight, bias, stride, padding) for (B, C, H, W) float32 (values and
    gradients to float rounding, tests/pipeline/test_model_ops.py)."""
    if (not TRAINING_CONV or jt.flags.use_cuda or x.dtype != "float32" or weight.dtype != "float32"
            or len(x.shape) != 4 or jt.compile_extern.mkl_ops is None or _conv_ops() is None):
        return jt.nn.conv2d(x, weight, bias, stride=stride, padding=padding)
    y = _Conv(_pair(stride), _pair(padding))(x, weight)
    return y if bias is None else y + bias.reshape(1, -1, 1, 1)
