"""The PyTorch side of `tools.step_bench`: the mirrored GAN (tools/torch_mirror.py), its training
step as pipeline/train/trainer.py runs it, the step's conv FLOPs and the machine's conv FLOP rate.

Imported only in a worker process whose OMP_NUM_THREADS is already set (never beside Jittor).
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.train.schedule import warmup_ema_decay

from . import torch_mirror as tm

# Conv of the machine's FLOP rate: 3x3, 128 -> 128 channels, batch 4 at 64x96 (2 x 3.6 GFLOP
# fwd + bwd-data + bwd-weight would be 3x; forward alone is what oneDNN's peak is measured on).
RATE_SHAPE = (4, 128, 64, 96)


def onehot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """uint8 (B, H, W) -> float32 one-hot (B, K, H, W) (pipeline.model.ganmodel.labels_to_onehot)."""
    return np.ascontiguousarray(np.eye(num_classes, dtype=np.float32)[labels].transpose(0, 3, 1, 2))


def batch_to_tensors(batch: dict, num_classes: int) -> dict:
    """pipeline.train.batch_to_vars for torch: seg one-hot, image in [-1, 1], edge in [0, 1]."""
    image = np.ascontiguousarray(batch["images"].transpose(0, 3, 1, 2), np.float32) / 127.5 - 1.0
    return {"seg": torch.from_numpy(onehot(batch["labels"], num_classes)),
            "image": torch.from_numpy(image),
            "edge": torch.from_numpy((batch["edges"][:, None] > 127).astype(np.float32))}


# ============================================================================ losses (losses.py)
def multiscale(fn, outputs):
    return sum(fn(feats[-1]) for feats in outputs) / len(outputs)


def feature_matching(fake_outputs, real_outputs):
    total = 0.0
    for fake_feats, real_feats in zip(fake_outputs, real_outputs):
        for f, r in zip(fake_feats[:-1], real_feats[:-1]):
            total = total + (f - r.detach()).abs().mean()
    return total / len(fake_outputs)


def supervised_contrastive(feats, labels: np.ndarray, temperature: float):
    """pipeline.model.contrastive.supervised_contrastive."""
    m = labels.shape[0]
    same = (labels[:, None] == labels[None, :]) & ~np.eye(m, dtype=bool)
    has_pos = same.any(axis=1)
    if not has_pos.any():
        return torch.zeros(1)
    f = feats / (feats.square().sum(1, keepdim=True).sqrt() + 1e-8)
    logits = f @ f.T / temperature
    logits = logits - logits.max(1, keepdim=True).values.detach()
    not_self = torch.from_numpy((~np.eye(m, dtype=bool)).astype(np.float32))
    log_prob = logits - torch.log((logits.exp() * not_self).sum(1, keepdim=True))
    pos = same.astype(np.float32)
    per_anchor = (log_prob * torch.from_numpy(pos)).sum(1) / torch.from_numpy(np.maximum(pos.sum(1), 1))
    return -(per_anchor * torch.from_numpy(has_pos.astype(np.float32) / has_pos.sum())).sum()


def multiscale_contrastive(features, label_map: np.ndarray, pixels: int, temperature: float):
    """pipeline.model.contrastive.multiscale_contrastive (pixels drawn with numpy's global RNG)."""
    total = 0.0
    for feat in features:
        b, c, h, w = feat.shape
        sy, sx = label_map.shape[1] // h, label_map.shape[2] // w
        small = label_map[:, sy // 2::sy, sx // 2::sx][:, :h, :w]
        pos = np.stack([np.random.choice(h * w, size=min(pixels, h * w), replace=False) for _ in range(b)])
        flat = (np.arange(b)[:, None] * (h * w) + pos).reshape(-1)
        rows = feat.permute(0, 2, 3, 1).reshape(b * h * w, c)[torch.from_numpy(flat)]
        total = total + supervised_contrastive(rows, small.reshape(-1)[flat], temperature)
    return total / max(1, len(features))


def kld(mu, logvar):
    return -0.5 * (1 + logvar - mu * mu - logvar.exp()).sum() / mu.shape[0]


def edge_bce(pred, target):
    p = pred.clamp(1e-6, 1 - 1e-6)
    return -(target * p.log() + (1 - target) * (1 - p).log()).mean()


# ============================================================================ model + step
class TorchTrainer:
    """GANModel + Trainer of pipeline/ for torch: same networks, terms, optimisers, EMA."""

    def __init__(self, cfg, height: int, width: int):
        mc, t = cfg.model, cfg.train
        self.cfg, self.step_index = cfg, 0
        torch.manual_seed(cfg.seed)
        self.generator = tm.Generator(mc, height, width)
        self.encoder = (tm.StyleEncoder(mc.nef, mc.z_dim, mc.encoder_size, mc.spectral_norm_g)
                        if mc.use_vae else None)
        self.edge_gan = mc.kind == "ecgan" and cfg.loss.edge_gan > 0
        self.discriminator = tm.MultiscaleDiscriminator(
            mc.num_classes + 3, mc.ndf, mc.d_layers, mc.d_scales, mc.spectral_norm,
            edge_in_nc=mc.num_classes + 1 if self.edge_gan else 0)
        self.ema_generator = copy.deepcopy(self.generator).eval()
        self.ema_encoder = copy.deepcopy(self.encoder).eval() if mc.use_vae else None
        for ema in (self.ema_generator, self.ema_encoder):
            if ema is not None:
                ema.requires_grad_(False)
        g_params = list(self.generator.parameters())
        if self.encoder is not None:
            g_params += list(self.encoder.parameters())
        self.opt_g = torch.optim.Adam(g_params, t.lr_g, betas=(t.beta1, t.beta2))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), t.lr_d, betas=(t.beta1, t.beta2))

    def networks(self) -> dict:
        nets = {"generator": self.generator, "encoder": self.encoder,
                "discriminator": self.discriminator, "ema_generator": self.ema_generator,
                "ema_encoder": self.ema_encoder}
        return {k: v for k, v in nets.items() if v is not None}

    def state_shapes(self) -> dict[str, list[int]]:
        """'network.key' -> shape of every state-dict entry (torch's BN step counter left out)."""
        return {f"{net}.{k}": list(v.shape) for net, m in self.networks().items()
                for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}

    def _discriminate(self, seg, images):
        b = seg.shape[0]
        out = self.discriminator(torch.cat(images, 0), tm.pyramid(seg, len(self.discriminator.nets)))
        return [[[f[i * b:(i + 1) * b] for f in feats] for feats in out] for i in range(len(images))]

    def _generator_losses(self, batch):
        mc, lc = self.cfg.model, self.cfg.loss
        seg, real = batch["seg"], batch["image"]
        z = mu = logvar = None
        if mc.use_vae:
            mu, logvar = self.encoder(real)
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        hints = None
        if mc.class_hints:
            hints = tm.class_hints(real, seg, mc.hint_min_pixels)
            if mc.hint_dropout > 0:
                hints = hints * (torch.rand(hints.shape[0], hints.shape[1], 1) >= mc.hint_dropout).float()
        outputs = self.generator(seg, z, hints, features=lc.contrastive_scales if lc.contrastive > 0 else 0)
        features = outputs.pop("features", None)
        fakes = [outputs["image"]] + ([outputs["refined"]] if "refined" in outputs else [])
        scales = [1.0, lc.refined][:len(fakes)]
        losses = {}
        d_out = self._discriminate(seg, fakes + ([real] if lc.feat > 0 else []))
        if lc.gan > 0:
            losses["g_gan"] = sum(s * multiscale(lambda x: -x.mean(), d) for s, d in zip(scales, d_out))
        if lc.feat > 0:
            losses["g_feat"] = sum(s * feature_matching(d, d_out[-1]) for s, d in zip(scales, d_out))
        if mc.use_vae and lc.kld > 0:
            losses["g_kld"] = kld(mu, logvar)
        if "edge" in outputs and lc.edge > 0:
            losses["g_edge"] = edge_bce(outputs["edge"], batch["edge"])
        if self.edge_gan and "edge" in outputs:
            fake, real_out = self._discriminate_edges(seg, outputs["edge"], batch["edge"])
            losses["g_edge_gan"] = multiscale(lambda x: -x.mean(), fake)
            if lc.feat > 0:
                losses["g_edge_feat"] = feature_matching(fake, real_out)
        if features is not None:
            losses["g_contrast"] = multiscale_contrastive(
                features, seg.argmax(1).numpy(), lc.contrastive_pixels, lc.contrastive_temperature)
        weights = {"g_gan": lc.gan, "g_feat": lc.feat, "g_kld": lc.kld, "g_edge": lc.edge,
                   "g_edge_gan": lc.edge_gan * lc.gan, "g_edge_feat": lc.edge_gan * lc.feat,
                   "g_contrast": lc.contrastive}
        return losses, sum(weights[k] * v for k, v in losses.items()), fakes, outputs

    def _discriminate_edges(self, seg, fake_edge, real_edge):
        b = seg.shape[0]
        out = self.discriminator.edge(torch.cat([fake_edge, real_edge], 0),
                                      tm.pyramid(seg, len(self.discriminator.nets)))
        return [[f[:b] for f in feats] for feats in out], [[f[b:] for f in feats] for feats in out]

    def train_step(self, batch: dict) -> dict[str, float]:
        """One G and one D update and the EMA update; returns the loss values (read back)."""
        torch.manual_seed(self.cfg.seed + self.step_index)
        np.random.seed(self.cfg.seed + self.step_index)  # the contrastive loss's pixels
        self.discriminator.requires_grad_(False)  # the G update computes no D weight gradients
        g_losses, total, fakes, outputs = self._generator_losses(batch)
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        self.discriminator.requires_grad_(True)
        seg, real = batch["seg"], batch["image"]
        d_out = self._discriminate(seg, [f.detach() for f in fakes] + [real])
        d_losses = {"d_real": multiscale(lambda x: F.relu(1.0 - x).mean(), d_out[-1]),
                    "d_fake": sum(multiscale(lambda x: F.relu(1.0 + x).mean(), d)
                                  for d in d_out[:-1]) / len(fakes)}
        if self.edge_gan and "edge" in outputs:
            fake, real_out = self._discriminate_edges(seg, outputs["edge"].detach(), batch["edge"])
            d_losses["d_edge_fake"] = multiscale(lambda x: F.relu(1.0 + x).mean(), fake)
            d_losses["d_edge_real"] = multiscale(lambda x: F.relu(1.0 - x).mean(), real_out)
        self.opt_d.zero_grad(set_to_none=True)
        sum(d_losses.values()).backward()
        self.opt_d.step()
        self.update_ema(warmup_ema_decay(self.step_index, self.cfg.train.ema_decay))
        self.step_index += 1
        return {k: float(v.item()) for k, v in {**g_losses, **d_losses}.items()}

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        pairs = [(self.ema_generator, self.generator), (self.ema_encoder, self.encoder)]
        for ema, live in pairs:
            if ema is None:
                continue
            live_state = live.state_dict()
            for key, var in ema.state_dict().items():
                if var.is_floating_point():
                    var.lerp_(live_state[key], 1.0 - decay)


# ============================================================================ FLOPs
def _conv_flops(module, inputs, output) -> int:
    w = module.weight
    return 2 * output.numel() * (w.shape[1] * w.shape[2] * w.shape[3])


def count_step_conv_flops(trainer: TorchTrainer, batch: dict) -> dict:
    """Conv FLOPs of one training step: every conv's forward FLOPs (2 x MACs) counted with hooks
    during one step, x3 for the backward passes (data + weight gradients), as the usual
    estimate; {"forward": ..., "step": ...}. The step it runs counts as a warm-up step."""
    total = [0]
    hooks = [m.register_forward_hook(lambda m, i, o: total.__setitem__(0, total[0] + _conv_flops(m, i, o)))
             for net in trainer.networks().values() for m in net.modules()
             if isinstance(m, (torch.nn.Conv2d, tm.SNConv2d))]
    try:
        trainer.train_step(batch)
    finally:
        for h in hooks:
            h.remove()
    return {"forward": total[0], "step": 3 * total[0]}


def conv_rate(seconds: float = 2.0, shape=RATE_SHAPE) -> float:
    """The machine's conv FLOP rate (FLOP/s) at this process's threads: a large 3x3 conv forward
    (oneDNN), the fastest of repeated calls over about `seconds`."""
    n, c, h, w = shape
    x, weight = torch.randn(n, c, h, w), torch.randn(c, c, 3, 3)
    flops = 2 * n * c * h * w * c * 9
    with torch.no_grad():
        for _ in range(2):
            F.conv2d(x, weight, padding=1)
        best, start = float("inf"), time.perf_counter()
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            F.conv2d(x, weight, padding=1)
            best = min(best, time.perf_counter() - t0)
    return flops / best


# ============================================================================ the worker's side
class TorchSide:
    """The mirror for `cfg` (threads already set) and one synthetic batch: the interface the
    step_bench worker drives (state_shapes, step, check, profile, conv_flops, conv_rate)."""

    framework = "torch"

    def __init__(self, cfg, batch: dict):
        torch.set_num_threads(max(1, cfg.threads))
        self.cfg = cfg
        self.trainer = TorchTrainer(cfg, cfg.data.height, cfg.data.width)
        self.batch = batch_to_tensors(batch, cfg.model.num_classes)

    def state_shapes(self) -> dict[str, list[int]]:
        return self.trainer.state_shapes()

    def step(self) -> dict[str, float]:
        return self.trainer.train_step(self.batch)

    def conv_flops(self) -> dict:
        return count_step_conv_flops(self.trainer, self.batch)

    def conv_rate(self) -> float:
        return conv_rate()

    @torch.no_grad()
    def check(self, path: str) -> dict[str, float]:
        """Load the Jittor side's dump (JittorSide.dump), run the same forwards; return the
        largest |difference| / (largest |value| + 1e-3) of each output."""
        f = np.load(path)
        t = self.trainer
        for net, m in t.networks().items():
            state = {k[len(f"state/{net}."):]: torch.from_numpy(f[k]) for k in f.files
                     if k.startswith(f"state/{net}.")}
            res = m.load_state_dict(state, strict=False)
            bad = [k for k in res.missing_keys + res.unexpected_keys
                   if not k.endswith("num_batches_tracked")]
            if bad:
                raise RuntimeError(f"{net}: the mirror's state differs from Jittor's at {bad[:5]}")
        seg, image = torch.from_numpy(f["in/seg"]), torch.from_numpy(f["in/image"])
        ours = {}
        z = None
        if t.encoder is not None:
            ours["mu"], ours["logvar"] = t.encoder(image)
            z = torch.from_numpy(f["out/mu"])
        hints = torch.from_numpy(f["in/hints"]) if self.cfg.model.class_hints else None
        ours.update({f"g_{k}": v for k, v in t.generator(seg, z, hints).items()})
        t.discriminator.eval()
        feats = t.discriminator(torch.cat([seg, torch.from_numpy(f["out/g_image"])], 1))
        ours.update({f"d{s}_{i}": v for s, fs in enumerate(feats) for i, v in enumerate(fs)})
        if t.discriminator.edge is not None:
            feats = t.discriminator.edge(torch.cat([seg, torch.from_numpy(f["out/g_edge"])], 1))
            ours.update({f"e{s}_{i}": v for s, fs in enumerate(feats) for i, v in enumerate(fs)})
        t.discriminator.train()
        missing = sorted(k for k in f.files if k.startswith("out/") and k[4:] not in ours)
        if missing:
            raise RuntimeError(f"the mirror produced no {missing} (tools/torch_mirror.py is behind "
                               "pipeline/model)")
        return {k: float(np.abs(v.numpy() - f[f"out/{k}"]).max() / (np.abs(f[f"out/{k}"]).max() + 1e-3))
                for k, v in ours.items()}

    def profile(self, steps: int) -> list[dict]:
        """torch.profiler over `steps` steps: self CPU seconds per step by op, slowest first."""
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                self.step()
        rows = [{"op": e.key, "seconds": e.self_cpu_time_total / 1e6 / steps,
                 "calls": e.count // steps} for e in prof.key_averages()]
        return sorted(rows, key=lambda r: -r["seconds"])
