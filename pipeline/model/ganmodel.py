"""The GAN: generator, style encoder, discriminator, their EMA copies, and the G/D loss steps.

The trainer owns the optimisers; this class computes named, unweighted loss terms
(`generator_step`, `discriminator_step`) and images (`generate`). `weighted_sum` combines the
terms with the config's weights.
"""

from __future__ import annotations

import sys
from typing import Callable

import numpy as np
import jittor as jt
from jittor import nn

from .contrastive import multiscale_contrastive, onehot_to_labels
from .discriminator import MultiscaleDiscriminator, pyramid
from .encoder import StyleEncoder, reparameterize
from .generator import Generator
from .losses import (VGGLoss, edge_loss, feature_matching_loss, hinge_d_loss, hinge_g_loss,
                     kld_loss, load_vgg19, multiscale)
from .normalization import trainable_parameters, xavier_init
from .style import (class_colour_loss, colour_hist_loss, colour_lowpass_loss, colour_stats_loss,
                    rgb_to_lab)

# Loss term -> the LossConfig attributes whose product is its weight (d_* are weighted 1).
LOSS_WEIGHT_KEYS = {"g_gan": ("gan",), "g_feat": ("feat",), "g_kld": ("kld",),
                    "g_edge": ("edge",), "g_vgg": ("vgg",),
                    "g_edge_gan": ("edge_gan", "gan"), "g_edge_feat": ("edge_gan", "feat"),
                    "g_contrast": ("contrastive",), "g_colour": ("colour_stats",),
                    "g_class_colour": ("colour_class",), "g_lowpass": ("colour_lowpass",),
                    "g_hist": ("colour_hist",)}

# Checkpointed networks, in a fixed order (the checkpoint's key prefixes).
NETWORKS = ("generator", "encoder", "discriminator", "ema_generator", "ema_encoder")


def labels_to_onehot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """uint8 label maps (B, H, W) -> float32 one-hot (B, num_classes, H, W)."""
    if labels.size and labels.max() >= num_classes:
        raise ValueError(f"label value {int(labels.max())} >= {num_classes} classes")
    eye = np.eye(num_classes, dtype=np.float32)
    return np.ascontiguousarray(eye[labels].transpose(0, 3, 1, 2))


def images_to_tensor(images: np.ndarray) -> np.ndarray:
    """uint8 RGB (B, H, W, 3) -> float32 (B, 3, H, W) in [-1, 1]."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / 127.5 - 1.0


def tensor_to_images(x: np.ndarray) -> np.ndarray:
    """float (B, 3, H, W) in [-1, 1] -> uint8 RGB (B, H, W, 3)."""
    return np.clip((x.transpose(0, 2, 3, 1) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def _copy_weights(dst: nn.Module, src: nn.Module) -> None:
    src_state = src.state_dict()
    for key, var in dst.state_dict().items():
        var.update(jt.array(src_state[key].numpy()))


def _encoder(mc) -> StyleEncoder:
    return StyleEncoder(mc.nef, mc.z_dim, mc.encoder_size, spectral=mc.spectral_norm_g,
                        shuffle=mc.style_shuffle,
                        hist_bins=mc.style_hist_bins if mc.style_stats else None)


class GANModel(nn.Module):
    """ECGAN (or the SPADE baseline) for label maps of size height x width.

    cfg: the whole Config (model, loss sections are read). `log` receives one-line notices.
    for_training=False skips the perceptual network (generation only needs the EMA networks).
    """

    def __init__(self, cfg, height: int, width: int, log: Callable[[str], None] | None = None,
                 for_training: bool = True):
        mc, lc = cfg.model, cfg.loss
        self.num_classes = mc.num_classes
        self.kind = mc.kind
        self.use_vae = mc.use_vae
        self.loss_cfg = lc
        self.model_cfg = mc
        self.generator = Generator(mc, height, width)
        self.ema_generator = Generator(mc, height, width)
        self.encoder = _encoder(mc) if mc.use_vae else None
        self.ema_encoder = _encoder(mc) if mc.use_vae else None
        # ECGAN's edge discriminator: on label one-hot ++ edge map (loss.edge_gan > 0)
        self.edge_gan = mc.kind == "ecgan" and lc.edge_gan > 0
        self.discriminator = MultiscaleDiscriminator(
            mc.num_classes + 3, mc.ndf, mc.d_layers, mc.d_scales, mc.spectral_norm,
            edge_in_nc=mc.num_classes + 1 if self.edge_gan else 0)
        if mc.init == "xavier":
            rng = np.random.default_rng([cfg.seed, 7])
            for net in (self.generator, self.encoder, self.discriminator):
                if net is not None:
                    xavier_init(net, mc.init_gain, rng)
        _copy_weights(self.ema_generator, self.generator)
        if self.use_vae:
            _copy_weights(self.ema_encoder, self.encoder)
        for ema in self.ema_networks():
            ema.eval()
        # Materialise every weight now: Jittor 1.3.11 mis-compiles some fused kernels that read a
        # not-yet-executed jt.array constant through a broadcast.
        jt.sync_all()
        self._vgg = None  # underscore: not part of the state dict / checkpoints
        log = log or (lambda msg: print(msg, file=sys.stderr))
        if for_training and lc.vgg > 0 and lc.vgg_weights:
            self._vgg = VGGLoss(load_vgg19(lc.vgg_weights))
        elif for_training and lc.vgg > 0:
            log("note: perceptual (VGG) loss is off: loss.vgg_weights names no VGG19 weights file")

    # ------------------------------------------------------------------ parameters
    def networks(self) -> dict[str, nn.Module]:
        """Name -> network, for every checkpointed network present."""
        nets = {name: getattr(self, name) for name in NETWORKS}
        return {k: v for k, v in nets.items() if v is not None}

    def ema_networks(self) -> list[nn.Module]:
        return [m for m in (self.ema_generator, self.ema_encoder) if m is not None]

    def generator_parameters(self) -> list:
        """What the G optimiser trains: generator and style encoder."""
        params = trainable_parameters(self.generator)
        if self.use_vae:
            params += trainable_parameters(self.encoder)
        return params

    def discriminator_parameters(self) -> list:
        return trainable_parameters(self.discriminator)

    def update_ema(self, decay: float) -> None:
        """ema = decay * ema + (1 - decay) * live, for every variable of G (and E)."""
        pairs = [(self.ema_generator, self.generator)]
        if self.use_vae:
            pairs.append((self.ema_encoder, self.encoder))
        # A Var, not a Python float: Jittor compiles float constants into its fused kernels, so a
        # changing float would recompile the update every step.
        d = jt.array(np.array([decay], np.float32))
        for ema, live in pairs:
            live_state = live.state_dict()
            for key, var in ema.state_dict().items():
                var.update((live_state[key].detach() + (var - live_state[key].detach()) * d)
                           .stop_grad())

    # ------------------------------------------------------------------ steps
    def _style(self, encoder, ref, sample: bool):
        if not self.use_vae:
            return None, None, None
        mu, logvar = encoder(ref)
        z = reparameterize(mu, logvar) if sample else mu
        return z, mu, logvar

    def _train_hints(self, real, seg):
        """The photo's own class colours, some classes hidden (the model must also draw without)."""
        if not self.model_cfg.class_hints:
            return None
        from .hints import class_hints, drop_hints

        hints = class_hints(real, seg, self.model_cfg.hint_min_pixels)
        return drop_hints(hints, self.model_cfg.hint_dropout)

    def _fakes(self, outputs) -> list:
        fakes = [outputs["image"]]
        if "refined" in outputs:
            fakes.append(outputs["refined"])
        return fakes

    def _seg_pyramid(self, seg) -> list:
        """The label one-hot at each of the discriminators' scales: pooled once per batch (the
        discriminators see concat(seg, image) at every scale, in the generator's step and the
        discriminator's, and the edge discriminator too), kept for the batch's `seg` Var."""
        cached = getattr(self, "_pyramid_of", None)  # "_": not a parameter, not in checkpoints
        if cached is None or cached[0] is not seg:
            self._pyramid_of = cached = (seg, pyramid(seg, len(self.discriminator.nets)))
        return cached[1]

    def _discriminate(self, seg, images: list) -> list[list]:
        """Run D once on all images (batch-concatenated); return per-image multi-scale outputs."""
        b = seg.shape[0]
        out = self.discriminator(jt.concat(images, dim=0), self._seg_pyramid(seg))
        return [[[f[i * b:(i + 1) * b] for f in feats] for feats in out]
                for i in range(len(images))]

    def generator_step(self, batch: dict) -> tuple[dict, dict]:
        """Generator/encoder loss terms for a batch: ({name: Var}, generator outputs).

        batch: "seg" one-hot (B, K, H, W), "image" (B, 3, H, W) in [-1, 1] (also the style
        reference), "edge" (B, 1, H, W) in [0, 1]. Terms whose weight is 0 are not computed.
        """
        lc = self.loss_cfg
        seg, real = batch["seg"], batch["image"]
        z, mu, logvar = self._style(self.encoder, real, sample=True)
        outputs = self.generator(seg, z, self._train_hints(real, seg),
                                 features=lc.contrastive_scales if lc.contrastive > 0 else 0,
                                 ref=real, ref_seg=seg)
        features = outputs.pop("features", None)
        fakes = self._fakes(outputs)
        # The refined image's image losses are scaled by loss.refined relative to the first image.
        scales = [1.0, lc.refined][: len(fakes)]
        losses = self._gan_terms(seg, real, fakes, scales)
        if self.use_vae and lc.kld > 0:
            losses["g_kld"] = kld_loss(mu, logvar)
        if "edge" in outputs and lc.edge > 0:
            losses["g_edge"] = edge_loss(outputs["edge"], batch["edge"])
        if self.edge_gan and "edge" in outputs:
            losses.update(self._edge_gan_terms(seg, outputs["edge"], batch["edge"]))
        if self._vgg is not None:
            losses["g_vgg"] = sum(s * self._vgg(f, real) for s, f in zip(scales, fakes))
        losses.update(self._colour_terms(fakes, scales, real, seg))
        if features is not None:
            losses["g_contrast"] = multiscale_contrastive(
                features, onehot_to_labels(seg), lc.contrastive_pixels,
                lc.contrastive_temperature)
        return losses, outputs

    def _gan_terms(self, seg, real, fakes: list, scales: list) -> dict:
        """Hinge GAN and feature-matching terms of the generated images (weighted by scales)."""
        lc, losses = self.loss_cfg, {}
        need_real = lc.feat > 0
        d_out = self._discriminate(seg, fakes + ([real] if need_real else []))
        if lc.gan > 0:
            losses["g_gan"] = sum(s * multiscale(hinge_g_loss, d) for s, d in zip(scales, d_out))
        if need_real:
            losses["g_feat"] = sum(s * feature_matching_loss(d, d_out[-1])
                                   for s, d in zip(scales, d_out))
        return losses

    def _discriminate_edges(self, seg, fake_edge, real_edge):
        """The edge discriminator on (labels ++ generated edges, labels ++ photo edges):
        (fake outputs, real outputs), each one feature list per scale."""
        b = seg.shape[0]
        out = self.discriminator.edge(jt.concat([fake_edge, real_edge], dim=0),
                                      self._seg_pyramid(seg))
        return ([[f[:b] for f in feats] for feats in out],
                [[f[b:] for f in feats] for feats in out])

    def _edge_gan_terms(self, seg, fake_edge, real_edge) -> dict:
        """ECGAN's edge GAN: hinge and feature matching of the generated edge map against the
        photo's edges, through the edge discriminator (conditioned on the label map)."""
        fake, real = self._discriminate_edges(seg, fake_edge, real_edge)
        terms = {"g_edge_gan": multiscale(hinge_g_loss, fake)}
        if self.loss_cfg.feat > 0:
            terms["g_edge_feat"] = feature_matching_loss(fake, real)
        return terms

    def _colour_terms(self, fakes: list, scales: list, real, seg) -> dict:
        """Colour losses of the generated images against the photo (which is also the style
        reference in training): soft-histogram correlation, LAB statistics, per-class LAB
        statistics and low-pass LAB colour, each weighted by scales."""
        lc, terms = self.loss_cfg, {}
        if lc.colour_hist > 0:
            terms["g_hist"] = sum(s * colour_hist_loss(f, real, lc.colour_hist_bins)
                                  for s, f in zip(scales, fakes))
        if lc.colour_stats <= 0 and lc.colour_lowpass <= 0 and lc.colour_class <= 0:
            return terms
        fake_labs = [rgb_to_lab(f) for f in fakes]
        real_lab = rgb_to_lab(real)
        if lc.colour_stats > 0:
            terms["g_colour"] = sum(s * colour_stats_loss(f, real_lab)
                                    for s, f in zip(scales, fake_labs))
        if lc.colour_class > 0:
            terms["g_class_colour"] = sum(s * class_colour_loss(f, real_lab, seg)
                                          for s, f in zip(scales, fake_labs))
        if lc.colour_lowpass > 0:
            terms["g_lowpass"] = sum(s * colour_lowpass_loss(f, real_lab, lc.colour_lowpass_factor)
                                     for s, f in zip(scales, fake_labs))
        return terms

    def discriminator_step(self, batch: dict, outputs: dict) -> dict:
        """Discriminator hinge terms {"d_real", "d_fake"} for real images vs `outputs` (detached),
        plus {"d_edge_real", "d_edge_fake"} of the edge discriminator when it is on."""
        seg, real = batch["seg"], batch["image"]
        fakes = [f.detach() for f in self._fakes(outputs)]
        d_out = self._discriminate(seg, fakes + [real])
        d_real = multiscale(lambda x: hinge_d_loss(x, x)[0], d_out[-1])
        d_fake = sum(multiscale(lambda x: hinge_d_loss(x, x)[1], d) for d in d_out[:-1])
        terms = {"d_real": d_real, "d_fake": d_fake / len(fakes)}
        if self.edge_gan and "edge" in outputs:
            fake, real_out = self._discriminate_edges(seg, outputs["edge"].detach(), batch["edge"])
            terms["d_edge_fake"] = multiscale(lambda x: hinge_d_loss(x, x)[1], fake)
            terms["d_edge_real"] = multiscale(lambda x: hinge_d_loss(x, x)[0], real_out)
        return terms

    def weighted_sum(self, losses: dict):
        """Sum of the terms times their config weights (d_* terms weigh 1)."""
        total = 0.0
        for name, value in losses.items():
            weight = 1.0
            for key in LOSS_WEIGHT_KEYS.get(name, ()):
                weight *= getattr(self.loss_cfg, key)
            total = total + weight * value
        return total

    def generate(self, seg, ref, sample_style: bool = False, use_ema: bool = True,
                 ref_seg=None) -> dict:
        """Images from one-hot maps and references (both Vars); EMA weights unless use_ema=False.
        ref_seg: the references' own one-hot label maps (class colour hints; None = no hints).

        Returns the generator's output dict ("image", and for ecgan "edge", "refined").
        """
        gen = self.ema_generator if use_ema else self.generator
        enc = self.ema_encoder if use_ema else self.encoder
        with jt.no_grad():
            z, _, _ = self._style(enc, ref, sample=sample_style)
            hints = None
            if self.model_cfg.class_hints and ref_seg is not None:
                from .hints import class_hints

                hints = class_hints(ref, ref_seg, self.model_cfg.hint_min_pixels)
            return gen(seg, z, hints, ref=ref, ref_seg=ref_seg)
