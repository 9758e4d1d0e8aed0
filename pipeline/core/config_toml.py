"""The TOML side of the config: reading files (with `extends`), `--set` overrides, coercing
values into the dataclasses of `pipeline.core.config`, and writing values back as TOML."""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from pathlib import Path
from typing import Any, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .errors import ConfigError

_NOT_KEYS = {"source"}  # dataclass fields that are not config keys


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


def _read_toml(path: Path, root: type, chain: tuple[Path, ...] = ()) -> dict:
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
    _check_known_keys(root, table, str(path))  # name the file that holds an unknown key
    if parent is None:
        return table
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: 'extends' must be a file name string")
    base = _read_toml((path.parent / parent).resolve(), root, chain + (path,))
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
