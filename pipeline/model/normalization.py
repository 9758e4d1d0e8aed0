"""Normalisation layers: spectral normalisation (Jittor has none), SPADE, and SPADE's xavier init.

Non-trained state (the spectral-norm `u` vectors) is kept in attributes whose name ends in
`BUFFER_SUFFIX`: they are saved in checkpoints but never handed to an optimiser.
"""

from __future__ import annotations

import math

import numpy as np
import jittor as jt
from jittor import nn

from . import ops

BUFFER_SUFFIX = "_u"


def is_buffer(name: str) -> bool:
    """True for a state-dict key that names a non-trained buffer."""
    return name.rsplit(".", 1)[-1].endswith(BUFFER_SUFFIX)


def trainable_parameters(module: nn.Module) -> list:
    """The module's trained parameters (buffers excluded), in state-dict order."""
    return [v for k, v in module.state_dict().items() if not is_buffer(k)]


def _l2_normalize(v, eps: float = 1e-12):
    return v / (jt.sqrt((v * v).sum()) + eps)


class SNConv2d(nn.Module):
    """Conv2d whose weight is divided by its largest singular value (power iteration).

    Like torch's `spectral_norm`: one power-iteration step per training forward pass; the
    left singular vector estimate `weight_u` persists between passes (and in checkpoints).
    With `spectral=False` it is a plain conv with the same parameter names.
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0,
                 bias: bool = True, spectral: bool = True):
        self.stride, self.padding, self.spectral = stride, padding, spectral
        bound = 1.0 / math.sqrt(cin * k * k)
        self.weight = jt.init.uniform((cout, cin, k, k), "float32", -bound, bound)
        self.bias = jt.init.uniform((cout,), "float32", -bound, bound) if bias else None
        if spectral:
            self.weight_u = _l2_normalize(jt.init.gauss((cout,), "float32")).stop_grad()

    def _sigma(self):
        w = self.weight.reshape(self.weight.shape[0], -1)
        u = self.weight_u
        if self.is_training():
            # One power-iteration step without gradient, as in Miyato et al. (2018).
            wd = w.detach()
            v = _l2_normalize(jt.matmul(u.reshape(1, -1), wd).reshape(-1))
            u = _l2_normalize(jt.matmul(wd, v.reshape(-1, 1)).reshape(-1)).stop_grad()
            self.weight_u.update(u)
        else:
            v = _l2_normalize(jt.matmul(u.reshape(1, -1), w.detach()).reshape(-1))
        v = v.stop_grad()
        return (u.reshape(1, -1) @ w @ v.reshape(-1, 1)).reshape(1)

    def execute(self, x):
        w = self.weight / self._sigma() if self.spectral else self.weight
        return ops.conv2d(x, w, self.bias, stride=self.stride, padding=self.padding)


class Conv2d(nn.Conv2d):
    """jittor.nn.Conv2d (its init, parameters and names) whose forward pass is `ops.conv2d`."""

    def execute(self, x):
        if self.groups != 1 or self.dilation != (1, 1):
            return super().execute(x)
        return ops.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)


def conv2d(cin: int, cout: int, k: int, stride: int = 1, padding: int = 0, bias: bool = True,
           spectral: bool = False) -> nn.Module:
    """A spectral-normalised conv when asked, else Jittor's own nn.Conv2d (its init and
    parameter names: a network with spectral norm off is the one it always was)."""
    if spectral:
        return SNConv2d(cin, cout, k, stride=stride, padding=padding, bias=bias, spectral=True)
    return Conv2d(cin, cout, k, stride=stride, padding=padding, bias=bias)


def param_free_norm(kind: str, channels: int) -> nn.Module:
    """Normalisation without learned affine parameters ('instance' or 'batch')."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    raise ValueError(f"param_free_norm {kind!r}: use 'instance' or 'batch'")


class SPADE(nn.Module):
    """Spatially-adaptive normalisation (Park et al. 2019).

    x -> param-free norm(x) * (1 + gamma(seg)) + beta(seg), where gamma and beta are predicted
    per pixel by a small conv net from the one-hot label map resized (nearest) to x's size.
    style_dim > 0 (model.style_modulation): a linear map of the style code z adds a per-channel
    scale and shift to gamma and beta. `slope` < 1 applies the leaky ReLU that follows the layer
    in the residual blocks; with instance norm the whole chain is one fused kernel on CPU
    (`ops.norm_act`).
    """

    def __init__(self, norm_nc: int, label_nc: int, hidden: int, norm: str = "instance",
                 style_dim: int = 0):
        self.norm = param_free_norm(norm, norm_nc)
        self.instance = norm == "instance"
        self.shared = nn.Sequential(Conv2d(label_nc, hidden, 3, padding=1), nn.ReLU())
        self.gamma = Conv2d(hidden, norm_nc, 3, padding=1)
        self.beta = Conv2d(hidden, norm_nc, 3, padding=1)
        # the param-free norm removes any per-channel offset the code put into the features, so
        # the code re-enters here (AdaIN-like)
        self.style = nn.Linear(style_dim, 2 * norm_nc) if style_dim > 0 else None

    def execute(self, x, seg, z=None, slope: float = 1.0):
        if seg.shape[2:] != x.shape[2:]:  # the generator passes it resized once per stage
            seg = nn.interpolate(seg, size=x.shape[2:], mode="nearest")
        actv = self.shared(seg)
        gamma, beta = self.gamma(actv), self.beta(actv)
        shift = None
        if self.style is not None and z is not None:
            shift = self.style(z).reshape(z.shape[0], 2, -1)  # (b, [gamma, beta], c)
        if self.instance:
            return ops.norm_act(x, gamma, beta, shift, slope, eps=self.norm.eps)
        if shift is not None:
            b, c = shift.shape[0], shift.shape[2]
            gamma = gamma + shift[:, 0].reshape(b, c, 1, 1)
            beta = beta + shift[:, 1].reshape(b, c, 1, 1)
        out = self.norm(x) * (1 + gamma) + beta
        return out if slope == 1.0 else nn.leaky_relu(out, slope)


class InstanceNormAct(nn.Module):
    """nn.InstanceNorm2d(affine=False) then nn.LeakyReLU(slope), as one fused kernel on CPU
    (`ops.norm_act`); no parameters, so a state dict is that of the pair it replaces."""

    def __init__(self, slope: float = 0.2, eps: float = 1e-5):
        self.slope, self.eps = slope, eps

    def execute(self, x):
        return ops.norm_act(x, slope=self.slope, eps=self.eps)


def xavier_init(module: nn.Module, gain: float, rng: np.random.Generator) -> None:
    """SPADE's `init_type="xavier"`: every conv and linear weight ~ xavier-normal(gain), biases 0.

    Convs are nn.Conv2d and SNConv2d; draws come from `rng`, so the init is seeded. A module
    with `own_init = True` (and what it holds) keeps its own initial values.
    """
    for m in _modules_to_init(module):
        if not isinstance(m, (nn.Conv2d, SNConv2d, nn.Linear)):
            continue
        shape = tuple(m.weight.shape)
        receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
        fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
        std = gain * math.sqrt(2.0 / (fan_in + fan_out))
        m.weight.update(jt.array(rng.normal(0.0, std, shape).astype(np.float32)))
        if getattr(m, "bias", None) is not None:
            m.bias.update(jt.zeros(m.bias.shape, "float32"))


def _modules_to_init(module: nn.Module) -> list:
    """module.modules() without those under a module marked `own_init`."""
    skipped = [m for m in module.modules() if getattr(m, "own_init", False)]
    inside = {id(sub) for m in skipped for sub in m.modules()}
    return [m for m in module.modules() if id(m) not in inside]
