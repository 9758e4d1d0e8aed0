"""Options shared by the `landscape` subcommands."""

from __future__ import annotations

import functools

import click

from .config import DEFAULT_CONFIG, Config, load_config


def config_options(func):
    """Add --config, --set and --device to a command; the command receives `cfg: Config`."""

    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=str(DEFAULT_CONFIG),
        show_default=True,
        help="Experiment TOML file (may `extends` another).",
    )
    @click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="SECTION.KEY=VALUE",
        help="Override one config key (repeatable), e.g. --set train.batch_size=4.",
    )
    @click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "cuda"]),
        default=None,
        help="Force the device (default: the config's `device`, 'auto' = GPU when present).",
    )
    @functools.wraps(func)
    def wrapper(*args, config_path, overrides, device, **kwargs):
        sets = list(overrides)
        if device is not None:
            sets.append(f'device="{device}"')
        cfg: Config = load_config(config_path, sets)
        return func(*args, cfg=cfg, **kwargs)

    return wrapper
