"""Range checks of a loaded config that types alone cannot express."""

from __future__ import annotations

from typing import Any


# ---------------------------------------------------------------------------- checks
LOSS_WEIGHTS = ("gan", "feat", "kld", "edge", "vgg", "refined", "edge_gan", "contrastive",
                "colour_stats", "colour_class", "colour_lowpass", "colour_hist")


def _style_problems(m: Any) -> list[tuple[str, str]]:
    """Range checks of the model's style mechanisms and init: (key, what is wrong)."""
    problems = []
    if m.style_shuffle < 0 or (m.style_shuffle > 1 and m.encoder_size % m.style_shuffle):
        problems.append(("model.style_shuffle",
                         f"must be 0 (off) or divide model.encoder_size ({m.encoder_size})"))
    if not 0 <= m.style_hist_bins <= 16:
        problems.append(("model.style_hist_bins", "must be in 0..16"))
    if m.style_palette < 0:
        problems.append(("model.style_palette", "must be >= 0 (0 = off)"))
    if m.init_gain <= 0:
        problems.append(("model.init_gain", "must be > 0"))
    on = [k for k, v in (("style_shuffle", m.style_shuffle > 1), ("style_modulation",
          m.style_modulation), ("style_stats", m.style_stats), ("style_palette",
          m.style_palette > 0)) if v]
    if on and not m.use_vae:
        problems.append((f"model.{on[0]}", "needs the style code: set model.use_vae = true, or"
                         " switch the style mechanisms off"))
    return problems


def _loss_problems(cfg: Any) -> list[tuple[str, str]]:
    """Range checks of the loss section: (key, what is wrong)."""
    lc, problems = cfg.loss, []
    for key in LOSS_WEIGHTS:
        if getattr(lc, key) < 0:
            problems.append((f"loss.{key}", "a loss weight must be >= 0 (0 = off)"))
    if lc.contrastive_temperature <= 0:
        problems.append(("loss.contrastive_temperature", "must be > 0"))
    if lc.contrastive_pixels < 2:
        problems.append(("loss.contrastive_pixels", "must be >= 2"))
    stages = cfg.model.num_up + 1
    if not 1 <= lc.contrastive_scales <= stages:
        problems.append(("loss.contrastive_scales",
                         f"must be in 1..{stages} (the generator's stages: model.num_up + 1)"))
    if not 2 <= lc.colour_hist_bins <= 32:
        problems.append(("loss.colour_hist_bins", "must be in 2..32"))
    if not 1 <= lc.colour_lowpass_factor <= min(cfg.data.height, cfg.data.width):
        problems.append(("loss.colour_lowpass_factor", "must be >= 1 and fit in the image"))
    return problems


def value_problems(cfg: Any) -> list[tuple[str, str]]:
    """Range checks that types alone cannot express: (key, what is wrong)."""
    problems = []
    d, m, t, g = cfg.data, cfg.model, cfg.train, cfg.generate
    if m.num_classes != 29:
        problems.append(("model.num_classes", "the competition's label maps have 29 classes"))
    if not 0.0 <= m.hint_dropout < 1.0:
        problems.append(("model.hint_dropout", "must be in [0, 1)"))
    for key in ("hint_texture", "hint_texture_absent"):
        if getattr(m, key) < 0:
            problems.append((f"model.{key}", "must be >= 0 (0 = off)"))
        elif getattr(m, key) > 0 and not (m.class_hints and (m.hint_skip or (m.use_vae and m.style_palette > 0))):
            problems.append((f"model.{key}", "needs the hint colours at the output: set"
                             " model.class_hints and model.hint_skip (or model.style_palette) on"))
    if cfg.threads < 0:
        problems.append(("threads", "must be >= 0 (0 = the cores available to the process)"))
    for key, value in (("data.height", d.height), ("data.width", d.width)):
        if value % (2**m.num_up):
            problems.append((key, f"{value} must be divisible by 2**model.num_up = {2 ** m.num_up}"))
    if not 0 <= d.canny_low <= d.canny_high:
        problems.append(("data.canny_low", "must satisfy 0 <= canny_low <= canny_high"))
    if d.val_count < 0:
        problems.append(("data.val_count", "must be >= 0"))
    for key in ("batch_size", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints"):
        if getattr(t, key) < 1:
            problems.append((f"train.{key}", "must be >= 1"))
    if t.epochs < 0 or t.decay_epochs < 0 or t.epochs + t.decay_epochs < 1:
        problems.append(("train.epochs", "epochs and decay_epochs must be >= 0, together >= 1"))
    if not 0.0 <= t.ema_decay < 1.0:
        problems.append(("train.ema_decay", "must be in [0, 1)"))
    if t.score_every < 0 or t.score_maps < 2:
        problems.append(("train.score_every", "score_every must be >= 0 (0 = off), score_maps >= 2"))
    if not t.score_metrics or len(set(t.score_metrics)) != len(t.score_metrics):
        problems.append(("train.score_metrics", "must list one or more metrics, each once"))
    if not 0.0 <= g.colour_strength <= 1.0:
        problems.append(("generate.colour_strength", "must be in [0, 1]"))
    if not 1 <= g.jpeg_quality <= 100:
        problems.append(("generate.jpeg_quality", "must be in 1..100"))
    if g.batch_size < 1 or cfg.evaluate.batch_size < 1:
        problems.append(("generate.batch_size", "batch sizes must be >= 1"))
    e, fs = cfg.evaluate, cfg.fit_segformer
    if e.fid_cap <= 0:
        problems.append(("evaluate.fid_cap", "must be > 0"))
    if e.report_rows < 0:
        problems.append(("evaluate.report_rows", "must be >= 0"))
    if len(set(e.metrics)) != len(e.metrics):
        problems.append(("evaluate.metrics", "lists a metric twice"))
    if len(fs.hidden_sizes) != len(fs.depths) or not fs.hidden_sizes:
        problems.append(("fit_segformer.depths", "needs one depth per entry of hidden_sizes"))
    for key in ("height", "width", "steps", "batch_size"):
        if getattr(fs, key) < 1:
            problems.append((f"fit_segformer.{key}", "must be >= 1"))
    if fs.height % 32 or fs.width % 32:
        problems.append(("fit_segformer.height", "height and width must be multiples of 32"))
    if fs.lr <= 0 or fs.warmup_steps < 0 or fs.eval_every < 0:
        problems.append(("fit_segformer.lr", "lr must be > 0, warmup_steps and eval_every >= 0"))
    if cfg.package.expert_picks < 0:
        problems.append(("package.expert_picks", "must be >= 0"))
    return problems + _style_problems(m) + _loss_problems(cfg)
