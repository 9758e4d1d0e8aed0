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
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

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
    drop_list: str = ""  # optional text file of training stems to drop (one per line)
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
    ndf: int = 64  # discriminator base width
    d_layers: int = 4  # conv layers per PatchGAN
    d_scales: int = 2  # multi-scale discriminator: number of PatchGANs
    spectral_norm: bool = True


@dataclass(frozen=True)
class LossConfig:
    """Weights of every loss term (0 switches a term off)."""

    gan: float = 1.0  # hinge GAN
    feat: float = 10.0  # discriminator feature matching
    kld: float = 0.05  # VAE KL divergence
    edge: float = 1.0  # edge branch vs preprocessed Canny edges
    vgg: float = 10.0  # perceptual; used only when vgg_weights is set
    refined: float = 1.0  # ecgan: multiplier of the image losses on the refined image
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


_NOT_KEYS = {"source"}
# Keys that change speed, never results: left out of `config_hash`, so changing them re-runs nothing.
SPEED_ONLY_KEYS = {("data", "workers"), ("train", "num_workers"), ("", "threads")}


# ---------------------------------------------------------------------------- checks
def _value_problems(cfg: Config) -> list[tuple[str, str]]:
    """Range checks that types alone cannot express: (key, what is wrong)."""
    problems = []
    d, m, t, g = cfg.data, cfg.model, cfg.train, cfg.generate
    if m.num_classes != 29:
        problems.append(("model.num_classes", "the competition's label maps have 29 classes"))
    if not 0.0 <= m.hint_dropout < 1.0:
        problems.append(("model.hint_dropout", "must be in [0, 1)"))
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
    return problems


# ---------------------------------------------------------------------------- reading
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        tp, str(tp)
    )


def _coerce(value: Any, tp: Any) -> Any:
    """Return `value` as type `tp`, or raise TypeError."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise TypeError
        return value
    if origin is list:
        if not isinstance(value, list):
            raise TypeError
        (item_tp,) = typing.get_args(tp)
        return [_coerce(v, item_tp) for v in value]
    if tp is bool:
        if not isinstance(value, bool):
            raise TypeError
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise TypeError
        return value
    raise TypeError


def _build(cls: type, table: dict, where: str, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in _NOT_KEYS]
    kwargs = {}
    for key, value in table.items():
        dotted = prefix + key
        if key not in names:
            raise ConfigError(
                f"{where}: unknown key '{dotted}'. Allowed here: {', '.join(sorted(names))}"
            )
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: '{dotted}' must be a table [{dotted}]")
            kwargs[key] = _build(tp, value, where, dotted + ".")
            continue
        try:
            kwargs[key] = _coerce(value, tp)
        except TypeError:
            raise ConfigError(
                f"{where}: '{dotted}' must be {_type_name(tp)}, got {value!r}"
            ) from None
    return cls(**kwargs)


def _check_known_keys(cls: type, table: dict, where: str, prefix: str = "") -> None:
    """Raise ConfigError for a key of `table` that `cls` does not have (types are checked later)."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in _NOT_KEYS]
    for key, value in table.items():
        if key not in names:
            raise ConfigError(
                f"{where}: unknown key '{prefix + key}'. Allowed here: {', '.join(sorted(names))}"
            )
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            _check_known_keys(hints[key], value, where, prefix + key + ".")


def _read_toml(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """Read a TOML file and the files it extends, merged (later files win)."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}. Pass an existing --config file.")
    if path in chain:
        raise ConfigError(f"{path}: 'extends' forms a cycle through {', '.join(map(str, chain))}")
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    parent = table.pop("extends", None)
    _check_known_keys(Config, table, str(path))  # name the file that holds an unknown key
    if parent is None:
        return table
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: 'extends' must be a file name string")
    base = _read_toml((path.parent / parent).resolve(), chain + (path,))
    return _merge(base, table)


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """`section.key=value` -> (["section", "key"], value); value is TOML, else a plain string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. train.batch_size=4")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. train.batch_size=4")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Read `path` (default `configs/base.toml`), apply `--set` overrides, check everything."""
    path = Path(path).resolve() if path else DEFAULT_CONFIG
    table = _read_toml(path)
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
    problems = _value_problems(cfg)
    if problems:
        raise ConfigError(
            f"{where}: " + "; ".join(f"'{key}' {what}" for key, what in problems)
        )
    return dataclasses.replace(cfg, source=str(path))


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


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are valid TOML basic strings, except \uD83D-style surrogate pairs
        # (TOML rejects them: keep non-ASCII as UTF-8) and DEL, which TOML wants escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


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
