"""PyTorch mirror of the project's GAN training step, for `tools.step_bench` only.

Layer by layer the networks of pipeline/model (generator.py, encoder.py, discriminator.py,
normalization.py, hints.py) with the same state-dict keys and shapes, and the step of
pipeline/train/trainer.py: G (+ style encoder) loss terms (hinge GAN, feature matching, KLD, edge
BCE; no VGG), Adam on G, D hinge terms on detached fakes, Adam on D, EMA update, loss values read
back. Written as a PyTorch user would (torch's own ops, default Adam, D frozen during the G
update), so the timing compares frameworks, not algorithms.

The config keys it mirrors are listed in tools/step_bench.py (MIRRORED_MODEL_KEYS,
MIRRORED_LOSS_KEYS); the bench refuses a config that sets any other model/loss key.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# ============================================================================ normalisation
def _l2_normalize(v, eps: float = 1e-12):
    return v / (v.square().sum().sqrt() + eps)


class SNConv2d(nn.Module):
    """pipeline.model.normalization.SNConv2d: one power-iteration step per training forward."""

    def __init__(self, cin, cout, k, stride=1, padding=0, bias=True, spectral=True):
        super().__init__()
        self.stride, self.padding, self.spectral = stride, padding, spectral
        bound = 1.0 / math.sqrt(cin * k * k)
        self.weight = nn.Parameter(torch.empty(cout, cin, k, k).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(cout).uniform_(-bound, bound)) if bias else None
        if spectral:
            self.register_buffer("weight_u", _l2_normalize(torch.randn(cout)))

    def _sigma(self):
        w = self.weight.reshape(self.weight.shape[0], -1)
        with torch.no_grad():
            v = _l2_normalize(self.weight_u @ w)
            u = self.weight_u
            if self.training:  # a new tensor: the one autograd saved for this pass stays intact
                u = _l2_normalize(w @ v)
                self.weight_u.copy_(u)
        return u @ w @ v

    def forward(self, x):
        w = self.weight / self._sigma() if self.spectral else self.weight
        return F.conv2d(x, w, self.bias, stride=self.stride, padding=self.padding)


def param_free_norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    raise ValueError(f"param_free_norm {kind!r}: use 'instance' or 'batch'")


class SPADE(nn.Module):
    def __init__(self, norm_nc, label_nc, hidden, norm="instance"):
        super().__init__()
        self.norm = param_free_norm(norm, norm_nc)
        self.shared = nn.Sequential(nn.Conv2d(label_nc, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, norm_nc, 3, padding=1)
        self.beta = nn.Conv2d(hidden, norm_nc, 3, padding=1)

    def forward(self, x, seg):
        normalized = self.norm(x)
        actv = self.shared(F.interpolate(seg, size=x.shape[2:], mode="nearest"))
        return normalized * (1 + self.gamma(actv)) + self.beta(actv)


# ============================================================================ generator
def stage_widths(ngf, num_up, max_mult):
    return [ngf * min(max_mult, 2 ** (num_up - i)) for i in range(num_up + 1)]


def conv2d(cin, cout, k, stride=1, padding=0, bias=True, spectral=False):
    """pipeline.model.normalization.conv2d: spectral-normalised when asked, else a plain conv."""
    if spectral:
        return SNConv2d(cin, cout, k, stride=stride, padding=padding, bias=bias)
    return nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=bias)


class SPADEResBlock(nn.Module):
    def __init__(self, fin, fout, label_nc, hidden, norm, spectral=False):
        super().__init__()
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.norm_0 = SPADE(fin, label_nc, hidden, norm)
        self.conv_0 = conv2d(fin, fmid, 3, padding=1, spectral=spectral)
        self.norm_1 = SPADE(fmid, label_nc, hidden, norm)
        self.conv_1 = conv2d(fmid, fout, 3, padding=1, spectral=spectral)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc, hidden, norm)
            self.conv_s = conv2d(fin, fout, 1, bias=False, spectral=spectral)

    def forward(self, x, seg):
        xs = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return xs + dx


class EdgeBlock(nn.Module):
    def __init__(self, cin, cout, label_nc):
        super().__init__()
        self.conv_0 = nn.Conv2d(cin + label_nc, cout, 3, padding=1)
        self.conv_1 = nn.Conv2d(cout, cout, 3, padding=1)

    def forward(self, e, seg):
        seg = F.interpolate(seg, size=e.shape[2:], mode="nearest")
        e = F.leaky_relu(self.conv_0(torch.cat([e, seg], 1)), 0.2)
        return F.leaky_relu(self.conv_1(e), 0.2)


class SemanticPreservingModule(nn.Module):
    def __init__(self, feat_nc, label_nc):
        super().__init__()
        self.fuse = nn.Conv2d(feat_nc + 3 + 1 + label_nc, feat_nc, 3, padding=1)
        self.gate = nn.Linear(feat_nc, feat_nc)
        self.out = nn.Conv2d(feat_nc, 3, 3, padding=1)

    def forward(self, feat, image, edge, seg, skip=0.0):
        f = F.leaky_relu(self.fuse(torch.cat([feat, image, edge, seg], 1)), 0.2)
        b, c, h, w = f.shape
        segf = seg.reshape(b, seg.shape[1], h * w)
        area = segf.sum(2, keepdim=True) + 1e-6
        class_feat = torch.bmm(segf, f.reshape(b, c, h * w).transpose(1, 2)) / area
        gates = torch.sigmoid(self.gate(class_feat))
        pixel_gate = torch.bmm(gates.transpose(1, 2), segf).reshape(b, c, h, w)
        return torch.tanh(self.out(F.leaky_relu(f * pixel_gate, 0.2)) + skip)


def class_hints(image, seg, min_pixels):
    """pipeline.model.hints.class_hints (seg at the image's size)."""
    b, k = seg.shape[:2]
    segf = seg.reshape(b, k, -1)
    area = segf.sum(2, keepdim=True)
    sums = torch.bmm(segf, image.reshape(b, 3, -1).transpose(1, 2))
    present = (area >= min_pixels).float()
    return torch.cat([sums / area.clamp(min=1.0) * present, present], 2).detach()


def paint_hints(hints, seg):
    b, k, h, w = seg.shape
    return torch.bmm(hints.transpose(1, 2), seg.reshape(b, k, h * w)).reshape(b, 4, h, w)


def hint_logits(hint_map):
    rgb, present = hint_map[:, :3].clamp(-0.95, 0.95), hint_map[:, 3:4]
    return 0.5 * torch.log((1 + rgb) / (1 - rgb)) * present


class Generator(nn.Module):
    def __init__(self, mc, height, width):
        super().__init__()
        self.num_up, self.use_vae = mc.num_up, mc.use_vae
        self.sh, self.sw = height // 2**mc.num_up, width // 2**mc.num_up
        widths = stage_widths(mc.ngf, mc.num_up, mc.max_mult)
        label_nc = mc.num_classes
        self.class_hints, self.hint_skip = mc.class_hints, mc.class_hints and mc.hint_skip
        cond_nc = label_nc + (4 if mc.class_hints else 0)
        if mc.use_vae:
            self.fc = nn.Linear(mc.z_dim, widths[0] * self.sh * self.sw)
        else:
            self.fc = nn.Conv2d(label_nc, widths[0], 3, padding=1)
        self.blocks = nn.ModuleList(
            [SPADEResBlock(widths[max(0, i - 1)], widths[i], cond_nc, mc.spade_hidden,
                           mc.param_free_norm, mc.spectral_norm_g) for i in range(mc.num_up + 1)])
        self.conv_img = nn.Conv2d(widths[-1], 3, 3, padding=1)
        self.ecgan = mc.kind == "ecgan"
        self.edge_attention = self.ecgan and mc.edge_attention
        self.semantic = self.ecgan and mc.semantic_module
        if self.ecgan:
            ew = mc.edge_nc
            self.edge_in = nn.Conv2d(label_nc, ew, 3, padding=1)
            self.edge_blocks = nn.ModuleList([EdgeBlock(ew, ew, label_nc) for _ in range(mc.num_up + 1)])
            self.conv_edge = nn.Conv2d(ew, 1, 3, padding=1)
            if self.edge_attention:
                self.attention = nn.ModuleList([nn.Conv2d(ew, w, 1) for w in widths])
            if self.semantic:
                self.spm = SemanticPreservingModule(widths[-1], label_nc)

    def forward(self, seg, z=None, hints=None, features=0):
        cond, skip = seg, 0.0
        if self.class_hints:
            if hints is None:
                hints = torch.zeros(seg.shape[0], seg.shape[1], 4)
            hint_map = paint_hints(hints, seg)
            cond = torch.cat([seg, hint_map], 1)
            if self.hint_skip:
                skip = hint_logits(hint_map)
        small = (self.sh, self.sw)
        if self.use_vae:
            x = self.fc(z).reshape(seg.shape[0], -1, *small)
        else:
            x = self.fc(F.interpolate(seg, size=small, mode="nearest"))
        e = self.edge_in(F.interpolate(seg, size=small, mode="nearest")) if self.ecgan else None
        stages = []
        for i, block in enumerate(self.blocks):
            if i > 0:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
                if e is not None:
                    e = F.interpolate(e, scale_factor=2, mode="nearest")
            x = block(x, cond)
            if e is not None:
                e = self.edge_blocks[i](e, seg)
                if self.edge_attention:
                    x = x * (1 + torch.sigmoid(self.attention[i](e)))
            stages.append(x)
        feat = F.leaky_relu(x, 0.2)
        out = {"image": torch.tanh(self.conv_img(feat) + skip)}
        if features > 0:
            out["features"] = stages[-features:]
        if self.ecgan:
            out["edge"] = torch.sigmoid(self.conv_edge(e))
            if self.semantic:
                out["refined"] = self.spm(feat, out["image"], out["edge"], seg, skip)
        return out


# ============================================================================ encoder, discriminator
class StyleEncoder(nn.Module):
    def __init__(self, nef, z_dim, size, spectral=False):
        super().__init__()
        self.size = size
        layers, cin = [], 3
        for w in [nef * min(8, 2**i) for i in range(int(math.log2(size)) - 2)]:
            layers += [conv2d(cin, w, 3, stride=2, padding=1, spectral=spectral),
                       nn.InstanceNorm2d(w, affine=True),
                       nn.LeakyReLU(0.2)]
            cin = w
        self.convs = nn.Sequential(*layers)
        self.fc_mu = nn.Linear(cin * 16, z_dim)
        self.fc_var = nn.Linear(cin * 16, z_dim)

    def forward(self, x):
        if x.shape[2] != self.size or x.shape[3] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        h = self.convs(x).reshape(x.shape[0], -1)
        return self.fc_mu(h), self.fc_var(h)


class PatchDiscriminator(nn.Module):
    def __init__(self, in_nc, ndf, layers, spectral):
        super().__init__()
        self.stages = nn.ModuleList([nn.Sequential(
            SNConv2d(in_nc, ndf, 4, stride=2, padding=2, spectral=spectral), nn.LeakyReLU(0.2))])
        nf = ndf
        for i in range(1, layers):
            nf_prev, nf = nf, min(nf * 2, ndf * 8)
            stride = 1 if i == layers - 1 else 2
            self.stages.append(nn.Sequential(
                SNConv2d(nf_prev, nf, 4, stride=stride, padding=2, bias=False, spectral=spectral),
                nn.InstanceNorm2d(nf, affine=False), nn.LeakyReLU(0.2)))
        self.stages.append(SNConv2d(nf, 1, 4, stride=1, padding=2, spectral=spectral))

    def forward(self, x):
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class MultiscaleDiscriminator(nn.Module):
    """edge_in_nc > 0: `self.edge`, ECGAN's edge discriminator (labels ++ edge map), inside."""

    def __init__(self, in_nc, ndf, layers, scales, spectral, edge_in_nc=0):
        super().__init__()
        self.nets = nn.ModuleList([PatchDiscriminator(in_nc, ndf, layers, spectral)
                                   for _ in range(scales)])
        self.edge = (MultiscaleDiscriminator(edge_in_nc, ndf, layers, scales, spectral)
                     if edge_in_nc > 0 else None)

    def forward(self, x, cond=None):
        """cond: None or the label one-hot's pyramid (`pyramid`), put before x's channels at
        each scale, repeated along the batch (pipeline/model/discriminator.py)."""
        out = []
        for i, net in enumerate(self.nets):
            if i > 0:
                x = _down(x)
            if cond is None:
                out.append(net(x))
            else:
                c = cond[i]
                out.append(net(torch.cat([c.repeat(x.shape[0] // c.shape[0], 1, 1, 1), x], 1)))
        return out


def _down(x):
    return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)


def pyramid(x, scales):
    out = [x]
    for _ in range(1, scales):
        out.append(_down(out[-1]))
    return out
