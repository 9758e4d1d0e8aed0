"""SPADE residual generator with the ECGAN edge branch and semantic-preserving module.

Widths: stage i (0 = the style code's grid, num_up = the output size) has
`ngf * min(max_mult, 2 ** (num_up - i))` channels.
"""

from __future__ import annotations

import numpy as np
import jittor as jt
from jittor import nn

from . import ops
from .normalization import SPADE, Conv2d, conv2d


def stage_widths(ngf: int, num_up: int, max_mult: int) -> list[int]:
    """Channel width of each generator stage, from the lowest resolution to the output."""
    return [ngf * min(max_mult, 2 ** (num_up - i)) for i in range(num_up + 1)]


class SPADEResBlock(nn.Module):
    """Residual block: (SPADE, LeakyReLU, conv) twice, plus a learned shortcut when widths differ."""

    def __init__(self, fin: int, fout: int, label_nc: int, hidden: int, norm: str,
                 spectral: bool = False, style_dim: int = 0):
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.norm_0 = SPADE(fin, label_nc, hidden, norm, style_dim)
        self.conv_0 = conv2d(fin, fmid, 3, padding=1, spectral=spectral)
        self.norm_1 = SPADE(fmid, label_nc, hidden, norm, style_dim)
        self.conv_1 = conv2d(fmid, fout, 3, padding=1, spectral=spectral)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc, hidden, norm, style_dim)
            self.conv_s = conv2d(fin, fout, 1, bias=False, spectral=spectral)

    def execute(self, x, seg, z=None):
        xs = self.conv_s(self.norm_s(x, seg, z)) if self.learned_shortcut else x
        dx = self.conv_0(self.norm_0(x, seg, z, slope=0.2))
        dx = self.conv_1(self.norm_1(dx, seg, z, slope=0.2))
        return xs + dx


class EdgeBlock(nn.Module):
    """One scale of the edge branch: (upsampled edge features, labels) -> edge features."""

    def __init__(self, cin: int, cout: int, label_nc: int):
        self.conv_0 = Conv2d(cin + label_nc, cout, 3, padding=1)
        self.conv_1 = Conv2d(cout, cout, 3, padding=1)

    def execute(self, e, seg):
        if seg.shape[2:] != e.shape[2:]:
            seg = nn.interpolate(seg, size=e.shape[2:], mode="nearest")
        e = nn.leaky_relu(self.conv_0(jt.concat([e, seg], dim=1)), 0.2)
        return nn.leaky_relu(self.conv_1(e), 0.2)


class SemanticPreservingModule(nn.Module):
    """Class-wise channel gating (ECGAN's semantic-preserving module) -> the refined image.

    Features, image, edges and labels are fused by a conv; each class's mean feature vector
    (over its pixels) predicts a sigmoid gate per channel; every pixel takes its class's gate,
    so class-dependent feature maps are highlighted before the refined image is drawn.
    """

    def __init__(self, feat_nc: int, label_nc: int):
        self.fuse = Conv2d(feat_nc + 3 + 1 + label_nc, feat_nc, 3, padding=1)
        self.gate = nn.Linear(feat_nc, feat_nc)
        self.out = Conv2d(feat_nc, 3, 3, padding=1)

    def execute(self, feat, image, edge, seg, skip=0.0):
        f = nn.leaky_relu(self.fuse(jt.concat([feat, image, edge, seg], dim=1)), 0.2)
        b, c, h, w = f.shape
        k = seg.shape[1]
        segf = seg.reshape(b, k, h * w)
        area = segf.sum(dim=2, keepdims=True) + 1e-6
        class_feat = ops.bmm(segf, f.reshape(b, c, h * w).transpose(0, 2, 1)) / area  # (b,k,c)
        gates = jt.sigmoid(self.gate(class_feat))  # (b, k, c)
        pixel_gate = ops.bmm(gates.transpose(0, 2, 1), segf).reshape(b, c, h, w)
        return jt.tanh(self.out(nn.leaky_relu(f * pixel_gate, 0.2)) + skip)


def _noise_map(b: int, h: int, w: int, training: bool):
    """(b, 1, h, w) standard normal noise: fresh while training (Jittor's seeded generator), a
    fixed map otherwise, so that generation is deterministic."""
    if training:
        return jt.randn((b, 1, h, w))
    fixed = np.random.default_rng([h, w]).standard_normal((1, 1, h, w)).astype(np.float32)
    return jt.array(np.repeat(fixed, b, axis=0))


class ClassPalette(nn.Module):
    """Each class's colour in the style of code z, painted by the label map: a (B, 3, H, W)
    pre-tanh offset of the output image(s) (model.style_palette). Parameters are multiplied by
    `gain` in the forward pass (an equalised learning rate): Adam moves each one by about lr per
    step, and without the gain the palette would need thousands of steps to reach a photo's
    colours. Starts at zero (xavier_init leaves it: own_init)."""

    own_init = True

    def __init__(self, z_dim: int, num_classes: int, gain: float):
        self.gain = gain
        self.linear = nn.Linear(z_dim, num_classes * 3)
        self.linear.weight.update(jt.zeros(self.linear.weight.shape, "float32"))
        self.linear.bias.update(jt.zeros(self.linear.bias.shape, "float32"))

    def execute(self, seg, z, hint_map=None):
        """hint_map: the painted class colour hints (B, 4, H, W) or None. Where a pixel's class
        has a hint, its colour is the hint's (pre-tanh, as hint_skip adds it), else the learnt one."""
        b, k, h, w = seg.shape
        palette = (self.linear(z) * self.gain).reshape(b, k, 3)
        painted = ops.bmm(palette.transpose(0, 2, 1), seg.reshape(b, k, h * w)).reshape(b, 3, h, w)
        if hint_map is None:
            return painted
        from .hints import hint_logits

        return hint_logits(hint_map) + (1 - hint_map[:, 3:4]) * painted


class Generator(nn.Module):
    """Label map (one-hot) + style code -> {"image", and for ecgan "edge", "refined"}.

    Starts from the style code (VAE) or the downsampled label map at (H, W) / 2**num_up and
    upsamples num_up times through SPADE residual blocks. kind="ecgan" adds an edge branch
    whose sigmoid attention gates the image features at every scale (edge_attention) and the
    semantic-preserving module producing the refined image (semantic_module). Options, each off
    by default except where configs/base.toml says: spectral norm on the residual convs
    (spectral_norm_g), the style code modulating every SPADE layer (style_modulation), per-pixel
    noise inputs (noise), a per-class colour palette from the style code (style_palette).
    """

    def __init__(self, mc, height: int, width: int):
        self.kind = mc.kind
        self.num_up = mc.num_up
        self.use_vae = mc.use_vae
        self.z_dim = mc.z_dim
        self.upsample = mc.upsample
        self.sh, self.sw = height // 2**mc.num_up, width // 2**mc.num_up
        widths = stage_widths(mc.ngf, mc.num_up, mc.max_mult)
        label_nc = mc.num_classes
        self.class_hints = mc.class_hints
        self.hint_skip = mc.class_hints and mc.hint_skip
        self.texture = mc.hint_texture  # config checks: the hint colours reach the output
        self.texture_gain = (jt.array([float(mc.hint_texture)])
                             if self.texture > 0 and mc.hint_texture_learnt else None)
        self.texture_absent = mc.hint_texture_absent  # classes without a hint: the whole reference's spread
        cond_nc = label_nc + (4 if mc.class_hints else 0)  # what SPADE sees: labels (+ hint map)
        if mc.use_vae:
            self.fc = nn.Linear(mc.z_dim, widths[0] * self.sh * self.sw)
        else:
            self.fc = Conv2d(label_nc, widths[0], 3, padding=1)
        self.modulate = mc.use_vae and mc.style_modulation
        block = lambda fin, fout: SPADEResBlock(  # noqa: E731
            fin, fout, cond_nc, mc.spade_hidden, mc.param_free_norm, mc.spectral_norm_g,
            mc.z_dim if self.modulate else 0)
        self.blocks = nn.ModuleList([block(widths[0], widths[0])] + [
            block(widths[i - 1], widths[i]) for i in range(1, mc.num_up + 1)])
        self.conv_img = Conv2d(widths[-1], 3, 3, padding=1)
        # StyleGAN's noise inputs: per-pixel noise after every stage, a learnt scale per channel
        self.noise = (nn.ParameterList([jt.zeros((1, w, 1, 1), "float32") for w in widths])
                      if mc.noise else None)
        self.palette = (ClassPalette(mc.z_dim, label_nc, mc.style_palette)
                        if mc.use_vae and mc.style_palette > 0 else None)
        self.ecgan = mc.kind == "ecgan"
        self.edge_attention = self.ecgan and mc.edge_attention
        self.semantic = self.ecgan and mc.semantic_module
        if self.ecgan:
            ew = mc.edge_nc
            self.edge_in = Conv2d(label_nc, ew, 3, padding=1)
            self.edge_blocks = nn.ModuleList(
                [EdgeBlock(ew, ew, label_nc) for _ in range(mc.num_up + 1)]
            )
            self.conv_edge = Conv2d(ew, 1, 3, padding=1)
            if self.edge_attention:
                self.attention = nn.ModuleList([Conv2d(ew, w, 1) for w in widths])
            if self.semantic:
                self.spm = SemanticPreservingModule(widths[-1], label_nc)

    def _up(self, x):
        if self.upsample == "bilinear":
            return nn.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return ops.upsample2x(x)

    def _start(self, seg, z):
        """The lowest-resolution features: from the style code (VAE) or the label map."""
        if not self.use_vae:
            return self.fc(nn.interpolate(seg, size=(self.sh, self.sw), mode="nearest"))
        if z is None:
            raise ValueError("this generator uses a style code: pass z (B, z_dim)")
        return self.fc(z).reshape(seg.shape[0], -1, self.sh, self.sw)

    def _colour_offset(self, seg, z, hint_map):
        """What is added before the output tanh: the palette (hint colours where hinted), else
        the hint colours (hint_skip), else nothing."""
        if self.palette is not None:
            return self.palette(seg, z, hint_map)
        if self.hint_skip:
            from .hints import hint_logits

            # the output starts from the reference's class colour and learns the rest
            return hint_logits(hint_map)
        return 0.0

    def _textured(self, hint_map, seg, ref, ref_seg):
        """(hint map for the output skip, pre-tanh offset for classes without a hint).

        model.hint_texture: the hint colours carry the reference's spread within each class
        (pipeline.model.hints.class_texture); the SPADE blocks keep seeing the flat class means.
        model.hint_texture_absent: pixels of a class without a hint get the spread of a random
        pixel of the whole reference about its mean, added before the output tanh."""
        if (self.texture <= 0 and self.texture_absent <= 0) or ref is None or ref_seg is None:
            return hint_map, 0.0
        from .hints import class_texture

        hinted, absent = class_texture(ref, ref_seg, seg, hint_map, self.is_training(),
                                       absent=self.texture_absent > 0)
        if self.texture > 0:
            gain = self.texture_gain if self.texture_gain is not None else self.texture
            hint_map = jt.concat([hint_map[:, :3] + gain * hinted, hint_map[:, 3:]], dim=1)
        return hint_map, (0.0 if absent is None else self.texture_absent * absent)

    def execute(self, seg, z=None, hints=None, features: int = 0, ref=None, ref_seg=None):
        """seg: one-hot (B, K, H, W); z: style code (B, z_dim) when use_vae; hints: class colour
        hints (B, K, 4) when model.class_hints (pipeline.model.hints; None = none known).
        features > 0: out["features"] holds the last `features` stages' feature maps.
        ref, ref_seg: the reference photo (B, 3, H', W') and its one-hot map, for
        model.hint_texture (None: flat class colours)."""
        cond, hint_map = seg, None
        if self.class_hints:
            from .hints import no_hints, paint_hints

            hint_map = paint_hints(no_hints(seg) if hints is None else hints, seg)
            cond = jt.concat([seg, hint_map], dim=1)
        x = self._start(seg, z)
        e = None
        if self.ecgan:
            e = self.edge_in(nn.interpolate(seg, size=(self.sh, self.sw), mode="nearest"))
        stages = []
        for i, block in enumerate(self.blocks):
            if i > 0:
                x = self._up(x)
                if e is not None:
                    e = self._up(e)
            # the label map (and hint map) resized once per stage, shared by its SPADE layers
            # and edge block (nearest: the same values each of them would compute)
            size = tuple(x.shape[2:])
            cond_i = (cond if size == tuple(cond.shape[2:])
                      else nn.interpolate(cond, size=size, mode="nearest"))
            x = block(x, cond_i, z if self.modulate else None)
            if self.noise is not None:
                x = x + self.noise[i] * _noise_map(x.shape[0], x.shape[2], x.shape[3],
                                                   self.is_training())
            if e is not None:
                e = self.edge_blocks[i](e, cond_i[:, :seg.shape[1]] if self.class_hints else cond_i)
                if self.edge_attention:
                    # Edge attention: features near predicted edges are amplified (gate in [1, 2]).
                    x = x * (1 + jt.sigmoid(self.attention[i](e)))
            stages.append(x)
        feat = nn.leaky_relu(x, 0.2)
        skip_hints, absent = (hint_map, 0.0) if hints is None else self._textured(hint_map, seg, ref, ref_seg)
        skip = self._colour_offset(seg, z, skip_hints) + absent
        out = {"image": jt.tanh(self.conv_img(feat) + skip)}
        if features > 0:
            out["features"] = stages[-features:]
        if self.ecgan:
            out["edge"] = jt.sigmoid(self.conv_edge(e))
            if self.semantic:
                out["refined"] = self.spm(feat, out["image"], out["edge"], seg, skip)
        return out
