"""Metric registry: one module per A-board term, registered by name.

Adding a metric = one new module with a `Metric` subclass decorated with
`@register_metric("some-name")`, and its module listed in `BUILTIN_MODULES`. The scorer
(`evaluation.evaluate`) loops over `cfg.evaluate.metrics` and never branches on a metric's name.

A metric's life: `__init__(cfg, ctx)` loads its model (raising a user error saying how to get a
missing one), `update(batch)` is called once per batch of decoded images, `result()` returns the
term's value and the per-image values, `describe()` says which model, weights, variant and
preprocessing gave the number (recorded in scores.json).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.core.config import Config
from pipeline.core.errors import ConfigError

# The four A-board terms a metric can provide (keys of scores.json "terms").
TERMS = ("mask_accuracy", "style", "aesthetic", "fid")
# Informative terms a metric may add beside its own (also in "terms"); the A formula ignores them.
INFORMATIVE_TERMS = ("kid",)
# Which way is better, per term: ceiling ratios are oriented by it (1.0 = as good as the ceiling).
HIGHER_IS_BETTER = {"mask_accuracy": True, "style": True, "aesthetic": True, "fid": False, "kid": False}

BUILTIN_MODULES = (
    "evaluation.metric_mask_accuracy",
    "evaluation.metric_color_hist",
    "evaluation.metric_aesthetic",
    "evaluation.metric_fid",
)

_NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_REGISTRY: dict[str, type["Metric"]] = {}


@dataclass
class Batch:
    """One batch of decoded inputs, each image decoded once and shared by every metric.

    stems: label-map stems; generated: HxWx3 uint8 RGB arrays; maps: HxW uint8 ground-truth
    label maps (None when no metric needs them); refs: HxWx3 uint8 style references (None when
    no metric needs them).
    """

    stems: list[str]
    generated: list[np.ndarray]
    maps: list[np.ndarray] | None = None
    refs: list[np.ndarray] | None = None


@dataclass
class MetricContext:
    """What metrics may need besides the config: device, training photos, cache, progress bars.

    reference_photos: the FID/KID reference set (`inputs.reference_photos`: the training split
    only); None = every photo of train_photos_dir. reference_info: its identity for scores.json.
    """

    device: Any  # torch.device
    train_photos_dir: Path | None = None
    reference_photos: list[Path] | None = None
    reference_info: dict[str, Any] = field(default_factory=dict)
    cache_dir: Path = Path("artifacts/cache")
    progress: bool = True


@dataclass
class MetricResult:
    """value: the term's value; per_image: stem -> value (None for set-level metrics like FID);
    informative: {informative term: value} for the metric's `informative_terms`."""

    value: float
    per_image: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    informative: dict[str, float] = field(default_factory=dict)


class Metric:
    """Base class of a registered metric (see the module docstring for the protocol)."""

    name: ClassVar[str] = ""  # set by `register_metric`
    term: ClassVar[str] = ""  # one of TERMS
    # subset of {"maps", "refs", "reference"}; "reference": the FID/KID reference set of training photos
    needs: ClassVar[frozenset[str]] = frozenset()
    higher_is_better: ClassVar[bool] = True
    informative_terms: ClassVar[tuple[str, ...]] = ()  # subset of INFORMATIVE_TERMS

    def __init__(self, cfg: Config, ctx: MetricContext) -> None:
        self.cfg = cfg
        self.ctx = ctx

    def update(self, batch: Batch) -> None:
        raise NotImplementedError

    def result(self) -> MetricResult:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """model, model_sha256, variant, preprocessing, stand_in (bool) and note (str)."""
        raise NotImplementedError


def register_metric(name: str):
    """Class decorator: register a `Metric` subclass under `name` (lower-case words joined by -)."""

    def wrap(cls):
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(f"metric name {name!r} must be lower-case words joined by '-'")
        if name in _REGISTRY:
            raise ValueError(f"metric {name!r} is already registered by {_REGISTRY[name].__module__}")
        if not (isinstance(cls, type) and issubclass(cls, Metric)) or cls is Metric:
            raise TypeError(f"metric {name!r}: {cls!r} must be a subclass of evaluation.registry.Metric")
        if cls.term not in TERMS:
            raise ValueError(f"metric {name!r}: term {cls.term!r} must be one of {TERMS}")
        if not set(cls.informative_terms) <= set(INFORMATIVE_TERMS):
            raise ValueError(f"metric {name!r}: informative terms {cls.informative_terms} must be"
                             f" within {INFORMATIVE_TERMS}")
        if not cls.needs <= {"maps", "refs", "reference"}:
            raise ValueError(f"metric {name!r}: needs {set(cls.needs)} must be within maps, refs, reference")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def load_builtin_metrics() -> None:
    """Import the built-in metric modules (each registers itself once)."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def available_metrics() -> list[str]:
    load_builtin_metrics()
    return sorted(_REGISTRY)


def get_metric(name: str) -> type[Metric]:
    """The registered class of `name`; ConfigError listing the known names otherwise."""
    load_builtin_metrics()
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown metric {name!r} in evaluate.metrics; known: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]
