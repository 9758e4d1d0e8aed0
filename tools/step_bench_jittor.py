"""The Jittor side of `tools.step_bench`: the project's own model and training step, built as
pipeline/bench.py builds them (pipeline.train.Trainer on a synthetic batch).

Imported only in a worker process whose thread count is set before Jittor's import.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np


# ============================================================================ previous ops
def apply_previous(names: list[str]) -> None:
    """Route pipeline/model/ops.py's 2x nearest upsampling ("upsample") back to jittor.nn's own
    op, its fused instance norm + modulation + leaky ReLU ("fused") back to the composed
    Jittor ops, its convolutions' Winograd algorithm ("winograd") back to the direct one, or
    its convolution op ("conv") back to Jittor's `mkl_conv` and its backward ops (what the
    project used before), for the networks built after this call (this process only): the
    third worker of `--jittor-previous`."""
    from jittor import nn

    from pipeline.model import ops

    unknown = set(names) - {"upsample", "fused", "conv", "winograd"}
    if unknown:
        raise SystemExit(f"--jittor-previous {sorted(unknown)}: use upsample, fused, conv, winograd")
    if "winograd" in names:
        ops.WINOGRAD = False
    if "conv" in names:
        ops.TRAINING_CONV = False
    if "fused" in names:
        ops.FUSED_NORM = False
    if "upsample" in names:
        ops.upsample2x = lambda x: nn.interpolate(x, scale_factor=2, mode="nearest")


class JittorSide:
    """The project's Trainer for `cfg` (threads already in cfg.threads) and one synthetic batch."""

    framework = "jittor"

    def __init__(self, cfg, batch: dict, previous: list[str] = ()):
        from pipeline.jt_env import setup_jittor

        self.jt = setup_jittor("cpu", cfg.threads)
        apply_previous(list(previous))
        from pipeline.train import Trainer, batch_to_vars

        self.cfg = cfg
        self.trainer = Trainer(cfg, self.jt, cfg.data.height, cfg.data.width, log=lambda msg: None)
        self.batch = batch_to_vars(self.jt, batch, cfg.model.num_classes)

    def state_shapes(self) -> dict[str, list[int]]:
        return {f"{net}.{k}": list(v.shape) for net, m in self.trainer.model.networks().items()
                for k, v in m.state_dict().items()}

    def step(self) -> dict[str, float]:
        return self.trainer.train_step(self.batch, 1.0)

    # ------------------------------------------------------------------ mirror check
    def dump(self, path: str) -> None:
        """Write the weights, fixed inputs and the networks' outputs on them (npz) for the torch
        side to compare: encoder (mu, logvar), generator (z, hints given), discriminator."""
        jt, model, b = self.jt, self.trainer.model, self.batch
        arrays = {f"state/{net}.{k}": v.numpy() for net, m in model.networks().items()
                  for k, v in m.state_dict().items()}
        rng = np.random.default_rng(1)
        seg, image = b["seg"], b["image"]
        hints = rng.uniform(-0.9, 0.9, (seg.shape[0], seg.shape[1], 4)).astype(np.float32)
        hints[..., 3] = rng.integers(0, 2, hints.shape[:2])
        arrays.update({"in/seg": seg.numpy(), "in/image": image.numpy(), "in/hints": hints})
        with jt.no_grad():
            if model.use_vae:
                mu, logvar = model.encoder(image)
                arrays.update({"out/mu": mu.numpy(), "out/logvar": logvar.numpy()})
                z = mu
            else:
                z = None
            outputs = model.generator(seg, z, jt.array(hints) if model.model_cfg.class_hints else None)
            arrays.update({f"out/g_{k}": v.numpy() for k, v in outputs.items()})
            model.discriminator.eval()  # no power-iteration update: the dumped weight_u is the one used
            feats = model.discriminator(jt.concat([seg, outputs["image"]], dim=1))
            edge_d = getattr(model.discriminator, "edge", None)
            edge_feats = edge_d(jt.concat([seg, outputs["edge"]], dim=1)) if edge_d is not None else []
            model.discriminator.train()
        for s, fs in enumerate(feats):
            arrays.update({f"out/d{s}_{i}": f.numpy() for i, f in enumerate(fs)})
        for s, fs in enumerate(edge_feats):
            arrays.update({f"out/e{s}_{i}": f.numpy() for i, f in enumerate(fs)})
        np.savez(path, **arrays)

    # ------------------------------------------------------------------ profile
    def profile(self, steps: int) -> list[dict]:
        """Jittor's profiler over `steps` training steps: seconds per step by op kind, slowest
        first ({"op", "seconds", "calls"})."""
        jt = self.jt
        with jt.profile_scope(warmup=0, rerun=0) as report:
            for _ in range(steps):
                self.step()
        header, rows = report[0], report[1:]
        name_i, total_i = header.index("Name"), header.index("TotalTime")
        count_i = header.index("Count") if "Count" in header else None
        by_op: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        for row in rows:
            key = op_kind(row[name_i])
            by_op[key][0] += float(row[total_i]) / 1e9 / steps  # ns -> s per step
            by_op[key][1] += int(row[count_i]) // steps if count_i is not None else 1
        return sorted(({"op": k, "seconds": v[0], "calls": v[1]} for k, v in by_op.items()),
                      key=lambda r: -r["seconds"])


def op_kind(name: str) -> str:
    """A Jittor profiler row's kernel name -> its kind: oneDNN ops by name ("mkl_conv"), fused
    kernels by their ops in order, with the binary/reduce operator ("reindex+binary(multiply)")."""
    if not name.startswith("«"):
        return name.split("«")[0]
    labels = []
    for seg in re.split(r"«opkey\d+:", name)[1:]:
        op = seg.split("«")[0]
        m = re.search(r"«OP:(\w+)", seg)
        label = f"{op}({m.group(1)})" if m else op
        if label not in labels:
            labels.append(label)
    return "+".join(labels)
