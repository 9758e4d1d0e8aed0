"""Where the step's time goes, part by part, in both frameworks (`tools.step_bench --parts N`).

Each part is timed alone (forward + backward where the step has one; lazy Jittor graphs built in
full, then synced once, as the step does), at the shapes the setting's generator and
discriminator use, summed over every call of one training step:

  G fwd+bwd, E fwd+bwd, D fwd+bwd   the networks (D on the 3B batch of a G pass), parameter grads
  EMA update, Adam G+D              the per-parameter updates (Adam on trivial gradients)
  instance norm                     every param-free norm of the generator's SPADE layers
  SPADE modulation                  norm * (1 + gamma) + beta at those shapes
  label resize                      the label map resized (nearest) once per SPADE layer
  upsample x2                       the generator's nearest 2x upsampling of x and the edge features
  leaky relu                        after every SPADE layer
  concat                            the edge blocks' (features, labels) concatenations
  D downsample                      the multi-scale D's 3x3 average pool (count_include_pad=False)

The Jittor side uses the project's modules (pipeline/model); the PyTorch side the mirror.
"""

from __future__ import annotations

import statistics
import time


def spade_shapes(cfg) -> list[tuple]:
    """(B, C, h, w) of every SPADE layer's input in one generator pass."""
    mc = cfg.model
    widths = [mc.ngf * min(mc.max_mult, 2 ** (mc.num_up - i)) for i in range(mc.num_up + 1)]
    sh, sw, b = cfg.data.height // 2 ** mc.num_up, cfg.data.width // 2 ** mc.num_up, cfg.train.batch_size
    shapes = []
    for i in range(mc.num_up + 1):
        fin, fout = widths[max(0, i - 1)], widths[i]
        h, w = sh * 2 ** i, sw * 2 ** i
        shapes += [(b, fin, h, w), (b, min(fin, fout), h, w)] + ([(b, fin, h, w)] if fin != fout else [])
    return shapes


def upsample_shapes(cfg) -> list[tuple]:
    """(B, C, h, w) inputs of the generator's 2x upsamplings (image and edge features)."""
    mc = cfg.model
    widths = [mc.ngf * min(mc.max_mult, 2 ** (mc.num_up - i)) for i in range(mc.num_up + 1)]
    sh, sw, b = cfg.data.height // 2 ** mc.num_up, cfg.data.width // 2 ** mc.num_up, cfg.train.batch_size
    return [s for i in range(1, mc.num_up + 1)
            for s in [(b, widths[i - 1], sh * 2 ** (i - 1), sw * 2 ** (i - 1)),
                      (b, mc.edge_nc, sh * 2 ** (i - 1), sw * 2 ** (i - 1))]]


def edge_concat_shapes(cfg) -> list[tuple]:
    mc = cfg.model
    sh, sw, b = cfg.data.height // 2 ** mc.num_up, cfg.data.width // 2 ** mc.num_up, cfg.train.batch_size
    return [(b, mc.edge_nc, sh * 2 ** i, sw * 2 ** i) for i in range(mc.num_up + 1)]


def timed(fn, reps: int) -> float:
    """Median seconds of `reps` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ============================================================================ Jittor
def jittor_parts(side) -> dict:
    """name -> callable running that part once (synced), on the Jittor side's model."""
    from jittor import nn

    from pipeline.model.discriminator import downsample

    jt, model, cfg, batch = side.jt, side.trainer.model, side.cfg, side.batch
    seg, image, k = batch["seg"], batch["image"], cfg.model.num_classes
    cond = jt.concat([seg, jt.zeros((seg.shape[0], 4) + tuple(seg.shape[2:]))], dim=1)
    hints = jt.zeros((seg.shape[0], k, 4))
    jt.sync_all()

    def grads_of(loss, wrt):
        jt.sync(jt.grad(loss, wrt))

    def network(net, forward):
        params = [p for p in net.parameters() if not p.is_stop_grad()]
        return lambda: grads_of(forward(), params)

    def g_loss():
        z = jt.randn((seg.shape[0], cfg.model.z_dim))
        return sum(v.mean() for v in model.generator(seg, z, hints).values())

    def d_loss():
        x = jt.concat([jt.concat([seg, image], dim=1)] * 3, dim=0)
        return sum(f.mean() for feats in model.discriminator(x) for f in feats)

    def per_shape(op, shapes, grad=True, arity=1):
        xs = [[jt.randn(s) for _ in range(arity)] for s in shapes]
        jt.sync_all()

        def run():
            ys = [op(*x) for x in xs]
            loss = sum((y * y).mean() for y in ys)
            jt.sync(jt.grad(loss, [v for x in xs for v in x]) if grad else ys)
        return run

    norm = nn.InstanceNorm2d(1, affine=False)
    params = model.generator_parameters() + model.discriminator_parameters()
    opt = jt.optim.Adam(params, 1e-4, betas=(0.0, 0.9))

    def adam():
        opt.step(sum((p * 1e-3).sum() for p in params))
        jt.sync_all()

    return {
        "G fwd+bwd": network(model.generator, g_loss),
        "E fwd+bwd": network(model.encoder, lambda: sum(v.mean() for v in model.encoder(image))),
        "D fwd+bwd": network(model.discriminator, d_loss),
        "EMA update": lambda: (model.update_ema(0.999), jt.sync_all()),
        "Adam G+D": adam,
        "instance norm": per_shape(norm, spade_shapes(cfg)),
        "SPADE modulation": per_shape(lambda x, g, b: x * (1 + g) + b, spade_shapes(cfg), arity=3),
        "label resize": per_shape(lambda x: nn.interpolate(cond, size=x.shape[2:], mode="nearest"),
                                  spade_shapes(cfg), grad=False),
        "upsample x2": per_shape(lambda x: nn.interpolate(x, scale_factor=2, mode="nearest"),
                                 upsample_shapes(cfg)),
        "leaky relu": per_shape(lambda x: nn.leaky_relu(x, 0.2), spade_shapes(cfg)),
        "concat": per_shape(lambda x: jt.concat([x, nn.interpolate(seg, size=x.shape[2:], mode="nearest")], dim=1),
                            edge_concat_shapes(cfg)),
        "D downsample": per_shape(downsample, [(3 * seg.shape[0], k + 3) + tuple(seg.shape[2:])]),
    }


# ============================================================================ PyTorch
def torch_parts(side) -> dict:
    """The same parts on the PyTorch mirror."""
    import torch
    import torch.nn.functional as F

    t, cfg, batch = side.trainer, side.cfg, side.batch
    seg, image, k = batch["seg"], batch["image"], cfg.model.num_classes
    cond = torch.cat([seg, torch.zeros(seg.shape[0], 4, *seg.shape[2:])], 1)
    hints = torch.zeros(seg.shape[0], k, 4)

    def network(net, forward):
        params = [p for p in net.parameters() if p.requires_grad]
        return lambda: torch.autograd.grad(forward(), params)

    def g_loss():
        z = torch.randn(seg.shape[0], cfg.model.z_dim)
        return sum(v.mean() for v in t.generator(seg, z, hints).values())

    def d_loss():
        x = torch.cat([torch.cat([seg, image], 1)] * 3, 0)
        return sum(f.mean() for feats in t.discriminator(x) for f in feats)

    def per_shape(op, shapes, grad=True, arity=1):
        xs = [[torch.randn(s, requires_grad=grad) for _ in range(arity)] for s in shapes]

        def run():
            ys = [op(*x) for x in xs]
            if grad:
                torch.autograd.grad(sum((y * y).mean() for y in ys), [v for x in xs for v in x])
        return run

    params = [p for m in (t.generator, t.encoder, t.discriminator) if m is not None
              for p in m.parameters()]
    opt = torch.optim.Adam(params, 1e-4, betas=(0.0, 0.9))
    for p in params:
        p.grad = torch.full_like(p, 1e-3)

    return {
        "G fwd+bwd": network(t.generator, g_loss),
        "E fwd+bwd": network(t.encoder, lambda: sum(v.mean() for v in t.encoder(image))),
        "D fwd+bwd": network(t.discriminator, d_loss),
        "EMA update": lambda: t.update_ema(0.999),
        "Adam G+D": opt.step,
        "instance norm": per_shape(lambda x: F.instance_norm(x), spade_shapes(cfg)),
        "SPADE modulation": per_shape(lambda x, g, b: x * (1 + g) + b, spade_shapes(cfg), arity=3),
        "label resize": per_shape(lambda x: F.interpolate(cond, size=x.shape[2:], mode="nearest"),
                                  spade_shapes(cfg), grad=False),
        "upsample x2": per_shape(lambda x: F.interpolate(x, scale_factor=2, mode="nearest"),
                                 upsample_shapes(cfg)),
        "leaky relu": per_shape(lambda x: F.leaky_relu(x, 0.2), spade_shapes(cfg)),
        "concat": per_shape(lambda x: torch.cat([x, F.interpolate(seg, size=x.shape[2:], mode="nearest")], 1),
                            edge_concat_shapes(cfg)),
        "D downsample": per_shape(lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
                                  [(3 * seg.shape[0], k + 3) + tuple(seg.shape[2:])]),
    }


def run_parts(side, reps: int) -> dict[str, float]:
    """Median seconds of each part on a worker's side."""
    parts = jittor_parts(side) if side.framework == "jittor" else torch_parts(side)
    return {name: timed(fn, reps) for name, fn in parts.items()}
