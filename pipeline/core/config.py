"""Experiment configuration: TOML files read with `tomllib` into frozen dataclasses.

Every default of the project lives here. A config file may start with
`extends = "base.toml"` (a path relative to that file) and then only lists what it changes.
Command-line overrides use `--set section.key=value` (value in TOML syntax; bare words are strings).
Unknown keys, wrong types and values outside their allowed set are `ConfigError`s naming the file,
the key and what is allowed.

`evaluation` imports this module too: it must stay free of jittor and torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .config_checks import value_problems
from .config_toml import _NOT_KEYS, _build, _read_toml, _toml_value, parse_override  # noqa: F401 (parse_override: public)
from .errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "base.toml"


@dataclass(frozen=True)
class DataConfig:
    """Dataset reading and the preprocess stage."""

    height: int = 384  # training size; the competition's images are 512x384 (W x H)
    width: int = 512
    val_count: int = 500  # training pairs held out (seeded) for `make score`; at most 1/4 of them
    canny_low: int = 100  # Canny thresholds of the photo edge maps (edge-branch target)
    canny_high: int = 200
    drop_list: str = "drop_lists/coesak_dirty.txt"  # optional text file of training stems to drop (one per line)
    workers: int = 0  # decode processes; 0 = all cores


@dataclass(frozen=True)
class ModelConfig:
    """Generator, style encoder and discriminator shapes; every switch is here."""

    kind: Literal["ecgan", "spade"] = "ecgan"
    num_classes: int = 29
    ngf: int = 64  # generator base width
    num_up: int = 5  # upsampling stages: the style code's grid is (H / 2**num_up, W / 2**num_up)
    max_mult: int = 16  # widest generator stage = ngf * max_mult
    spade_hidden: int = 128  # hidden width of the SPADE gamma/beta network
    param_free_norm: Literal["instance", "batch"] = "instance"
    use_vae: bool = True  # VAE style encoder on the reference photo
    z_dim: int = 256
    nef: int = 64  # encoder base width
    encoder_size: int = 256  # reference photo resized to this square before encoding
    edge_attention: bool = True  # ecgan: edge features gate the image features at each scale
    edge_nc: int = 64  # ecgan: width of the edge branch
    semantic_module: bool = True  # ecgan: class-wise channel gating producing the refined image
    # Class colour hints (SEAN-style per-region style): each SPADE block also sees, at every pixel,
    # the reference photo's mean colour of that pixel's class (from the reference's own label map)
    # and whether the reference has that class; the style code fills the classes it lacks.
    class_hints: bool = True
    hint_dropout: float = 0.3  # training: share of classes whose hint is hidden (taught to do without)
    hint_min_pixels: int = 16  # a class covering fewer pixels of the reference gives no hint
    hint_skip: bool = True  # the hint colours also enter right before the output tanh
    # > 0: the colour entering before the output tanh is, per pixel, a random reference pixel of
    # the same class (its spread about the class mean scaled by this), not the flat class mean
    hint_texture: float = 0.0
    hint_texture_learnt: bool = False  # that scale is a parameter trained with the generator
    # > 0: pixels of a class without a hint get the spread of a random pixel of the whole
    # reference about its mean colour, times this, added before the output tanh
    hint_texture_absent: float = 0.0
    ndf: int = 64  # discriminator base width
    d_layers: int = 4  # conv layers per PatchGAN
    d_scales: int = 2  # multi-scale discriminator: number of PatchGANs
    spectral_norm: bool = True  # in the discriminator(s)
    # ECGAN recipe (SPADE's settings): spectral norm in the generator's residual convs and the
    # style encoder; SPADE's xavier-normal init of G, E and D with this gain ("default": Jittor's)
    spectral_norm_g: bool = True
    init: Literal["default", "xavier"] = "xavier"
    init_gain: float = 0.02
    upsample: Literal["nearest", "bilinear"] = "nearest"  # the generator's 2x upsampling
    # Style mechanisms (off by default). style_shuffle > 1: the encoder sees the reference cut
    # into style_shuffle x style_shuffle patches in a random order (fixed at test): colours, not layout
    style_shuffle: int = 0
    style_modulation: bool = False  # the style code also scales/shifts every SPADE layer's channels
    style_stats: bool = False  # the encoder's heads also read LAB mean/std and a joint RGB histogram
    style_hist_bins: int = 8  # bins per channel of that histogram (0: mean/std only)
    # > 0: a per-class colour palette predicted from the style code is added before the output
    # tanh, its parameters scaled by this gain; a class with a colour hint takes the hint's colour
    style_palette: float = 0.0
    noise: bool = False  # per-pixel noise inputs after every generator stage (StyleGAN)


@dataclass(frozen=True)
class LossConfig:
    """Weights of every loss term (0 switches a term off)."""

    gan: float = 1.0  # hinge GAN
    feat: float = 10.0  # discriminator feature matching
    kld: float = 0.05  # VAE KL divergence
    edge: float = 1.0  # edge branch vs preprocessed Canny edges
    vgg: float = 10.0  # perceptual; used only when vgg_weights is set
    refined: float = 2.0  # ecgan: multiplier of the image losses on the refined image (COESAK: 2)
    edge_gan: float = 1.0  # ecgan: GAN + feature matching (x gan, x feat) on generated vs real edge maps
    contrastive: float = 1.0  # ecgan: multi-scale pixel contrastive loss on generator features
    contrastive_temperature: float = 0.1
    contrastive_pixels: int = 64  # pixels drawn per image and scale
    contrastive_scales: int = 3  # the last N generator stages (finest resolutions)
    # colour losses (off by default), each against the photo (the style reference in training)
    colour_stats: float = 0.0  # LAB per-channel mean/std of the output vs the photo
    colour_class: float = 0.0  # LAB mean/std of each class region, output vs the photo
    colour_lowpass: float = 0.0  # LAB L1 of window averages (overlapping by half), output vs photo
    colour_lowpass_factor: int = 8  # window size of colour_lowpass, in pixels
    colour_hist: float = 0.0  # 1 - correlation of soft joint RGB histograms, output vs photo
    colour_hist_bins: int = 8  # bins per channel of colour_hist
    vgg_weights: str = ""  # VGG19 weights file (.npz or .safetensors); empty = perceptual off


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation schedule of the train stage."""

    epochs: int = 50  # epochs at the full learning rate
    decay_epochs: int = 150  # epochs of linear decay to zero after those
    max_steps: int = 0  # stop after this many steps (0 = run the whole schedule)
    batch_size: int = 1
    lr_g: float = 0.0001  # two time-scale update rule: D learns faster than G
    lr_d: float = 0.0004
    # lr_g/lr_d are for one process; with N (mpirun) the effective batch is N x batch_size and
    # they are multiplied by 1 ("none", as SPADE), N ("linear") or sqrt(N) ("sqrt")
    lr_scaling: Literal["none", "linear", "sqrt"] = "none"
    beta1: float = 0.0
    beta2: float = 0.9
    ema_decay: float = 0.999
    flip: bool = True  # random horizontal flip
    log_every: int = 50  # steps between train_log.csv rows
    sample_every: int = 1000  # steps between sample grids
    checkpoint_every: int = 2000  # steps between checkpoints
    keep_checkpoints: int = 3  # newest checkpoints kept (plus the final one)
    num_workers: int = 4  # data loader workers
    # rank 0 scores the EMA generator every score_every steps (0 = off) on the first score_maps
    # validation maps with the project's scorer: score_log.csv, best.safetensors in the run
    score_every: int = 0
    score_maps: int = 16
    score_metrics: list[str] = field(  # the cheap terms: no CLIP (aesthetic) by default
        default_factory=lambda: ["mask-accuracy", "color-hist-corr", "fid"]
    )


@dataclass(frozen=True)
class GenerateConfig:
    """Image generation from label maps and reference photos."""

    batch_size: int = 4
    jpeg_quality: int = 95
    colour_transfer: Literal["none", "reinhard-lab", "histogram-match"] = "reinhard-lab"
    colour_strength: float = 1.0  # blend with the untransferred image: 0 = none, 1 = the full transfer
    sample_style: bool = False  # sample the style code instead of using the encoder's mean
    output: Literal["refined", "image"] = "refined"  # ecgan: which of the two images is saved
    out_height: int = 384  # submission size (W x H = 512 x 384)
    out_width: int = 512


@dataclass(frozen=True)
class EvaluateConfig:
    """`landscape evaluate`: scoring models and variants of the four A-board terms."""

    # metric names of the evaluation registry; the A-board score needs all four terms
    metrics: list[str] = field(
        default_factory=lambda: ["mask-accuracy", "color-hist-corr", "aesthetic", "fid"]
    )
    batch_size: int = 16
    segformer: str = "weights/segformer"  # local folder (save_pretrained) or hub id
    # how the checkpoint's classes map onto the 29: "" (it has the 29 classes), "ade20k-names"
    # (match ADE20K label names, the rest -> other) or a json file {source class id: 0..28}
    segformer_class_map: str = ""
    # colour-histogram variant: rgb-8, rgb-16, rgb-32, hsv-hue-180, hsv-72, or several joined
    # with "+" (averaged), e.g. "rgb-16+hsv-72"
    style_variant: str = "rgb-16"
    clip: str = "weights/clip-vit-large-patch14"  # local folder or hub id
    aesthetic_head: str = "weights/aesthetic-head.safetensors"  # or the LAION .pth
    allow_standin: bool = True  # false: a missing aesthetic model is an error, not a stand-in
    fid_weights: str = "weights/inception-v3-compat-2015-12-05.pth"  # `landscape weights` makes it
    fid_cap: float = 100.0
    cache_dir: str = "artifacts/cache"  # FID statistics of the training photos
    report_rows: int = 3  # best and worst images shown per term in report.html


@dataclass(frozen=True)
class FitSegformerConfig:
    """`landscape fit-segformer`: the mask-accuracy scorer fitted on the training labels."""

    pretrained: str = ""  # local folder or hub id of a SegFormer to start from; empty = from scratch
    hidden_sizes: list[int] = field(default_factory=lambda: [32, 64, 160, 256])
    depths: list[int] = field(default_factory=lambda: [2, 2, 2, 2])
    decoder_hidden_size: int = 256
    height: int = 384  # input size of the scorer (the saved processor resizes to it)
    width: int = 512
    steps: int = 20000
    batch_size: int = 8
    lr: float = 0.00006
    weight_decay: float = 0.01
    warmup_steps: int = 100  # linear warm-up, then polynomial (linear) decay to zero
    flip: bool = True  # random horizontal flip of photo and labels
    eval_every: int = 0  # steps between validation accuracy lines (0 = only at the end)


@dataclass(frozen=True)
class PackageConfig:
    """The submission zip and the expert-vote picks."""

    expert_picks: int = 3


@dataclass(frozen=True)
class Config:
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0  # CPU threads of Jittor's kernels; 0 = the cores this process may use (see jt_env)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    fit_segformer: FitSegformerConfig = field(default_factory=FitSegformerConfig)
    package: PackageConfig = field(default_factory=PackageConfig)
    source: str = field(default="", compare=False)  # file the config was read from (not a key)


# Keys that change speed, never results: left out of `config_hash`, so changing them re-runs nothing.
SPEED_ONLY_KEYS = {("data", "workers"), ("train", "num_workers"), ("", "threads")}


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Read `path` (default `configs/base.toml`), apply `--set` overrides, check everything."""
    path = Path(path).resolve() if path else DEFAULT_CONFIG
    table = _read_toml(path, Config)
    for text in overrides:
        parts, value = parse_override(text)
        node = table
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: '{part}' is not a section")
        node[parts[-1]] = value
    where = str(path) + (" (with --set overrides)" if overrides else "")
    cfg = _build(Config, table, where)
    problems = value_problems(cfg)
    if problems:
        raise ConfigError(
            f"{where}: " + "; ".join(f"'{key}' {what}" for key, what in problems)
        )
    return dataclasses.replace(cfg, source=str(path))


# Training keys added after runs already existed, with the value that reproduces the network and
# losses of a run made before the key: a run's config.resolved.toml that lacks one of them was
# trained that way, whatever today's default is.
LEGACY_VALUES = {
    ("model", "spectral_norm_g"): "false", ("model", "init"): '"default"',
    ("loss", "refined"): "1.0", ("loss", "edge_gan"): "0.0", ("loss", "contrastive"): "0.0",
}


def load_run_config(path: str | Path, overrides: typing.Sequence[str] = ()) -> Config:
    """A training run's own config.resolved.toml: keys it predates take their LEGACY_VALUES (the
    settings it was trained with), then `overrides` apply as in `load_config`."""
    table = _read_toml(Path(path).resolve(), Config)
    legacy = [f"{section}.{key}={value}" for (section, key), value in LEGACY_VALUES.items()
              if key not in table.get(section, {})]
    return load_config(path, legacy + list(overrides))


def default_config() -> Config:
    """The built-in defaults (what `configs/base.toml` is expected to match)."""
    return Config()


# ---------------------------------------------------------------------------- writing
def config_to_dict(cfg: Any) -> dict:
    """Plain dict of a config (or a section), without the non-key fields."""
    out = {}
    for f in dataclasses.fields(cfg):
        if f.name in _NOT_KEYS:
            continue
        value = getattr(cfg, f.name)
        out[f.name] = config_to_dict(value) if dataclasses.is_dataclass(value) else value
    return out


def config_to_toml(cfg: Config) -> str:
    """The whole resolved config as TOML text that `load_config` reads back unchanged."""
    table = config_to_dict(cfg)
    lines = [f"# resolved from {cfg.source or 'defaults'}"]
    sections = []
    for key, value in table.items():
        if isinstance(value, dict):
            sections.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, section in sections:
        lines.append(f"\n[{name}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in section.items())
    return "\n".join(lines) + "\n"


def config_hash(cfg: Any, *sections: str) -> str:
    """sha256 of the canonical JSON of a config, or of the named sections of it."""
    table = config_to_dict(cfg)
    for section, key in SPEED_ONLY_KEYS:
        (table.get(section, {}) if section else table).pop(key, None)
    if sections:
        table = {name: table[name] for name in sections}
    blob = json.dumps(table, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()
