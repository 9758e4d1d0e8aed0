import pytest

from evaluation import registry
from evaluation.registry import Metric, available_metrics, get_metric, register_metric
from pipeline.core.errors import ConfigError


def test_builtin_metrics_are_registered_with_their_terms():
    assert set(available_metrics()) >= {"mask-accuracy", "color-hist-corr", "aesthetic", "fid"}
    assert get_metric("color-hist-corr").term == "style"
    assert get_metric("fid").higher_is_better is False
    assert "maps" in get_metric("mask-accuracy").needs


def test_registry_checks_name_duplicates_and_base_class(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    class Good(Metric):
        term = "style"

    with pytest.raises(ValueError, match="lower-case"):
        register_metric("Bad_Name")(Good)
    with pytest.raises(ValueError, match="already registered"):
        register_metric("fid")(Good)
    with pytest.raises(TypeError, match="subclass"):
        register_metric("not-a-metric")(object)

    class NoTerm(Metric):
        term = "beauty"

    with pytest.raises(ValueError, match="term"):
        register_metric("no-term")(NoTerm)
    assert register_metric("my-style")(Good) is Good and get_metric("my-style") is Good


def test_unknown_metric_is_a_config_error():
    with pytest.raises(ConfigError, match="known"):
        get_metric("inception-score")
