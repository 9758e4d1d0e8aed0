"""`landscape`: the click group of every stage, and the options the stages share.

Each area keeps its subcommands in its own `commands` module (a list `COMMANDS`), registered here
by name: the heavy imports (jittor, torch) happen inside the commands, so `landscape --help` is
instant and the Jittor and PyTorch sides never load each other.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys

import click

from .config import DEFAULT_CONFIG, Config, load_config
from .artifacts import os_error_message
from .errors import LandscapeError, StorageError

COMMAND_MODULES = (
    "pipeline.data.commands",
    "pipeline.data.sample.commands",
    "pipeline.commands",
    "evaluation.commands",
    "submission.commands",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="landscape-pipeline")
@click.option("-v", "--verbose", is_flag=True, help="Show Jittor's own info lines (compiler, cache).")
def cli(verbose: bool) -> None:
    """Style- and semantics-guided landscape synthesis: preprocess, train, generate,
    evaluate and package a Jittor AI Challenge submission."""
    if verbose:  # read by pipeline.jt_env before jittor's first import
        os.environ["LANDSCAPE_VERBOSE"] = "1"


def echo_summary(lines: list[str]) -> None:
    """Print a stage's summary: "warning: ..." lines red on stderr, "note: ..." yellow, the rest plain."""
    for line in lines:
        if line.startswith("warning:"):
            click.secho(line, fg="red", bold=True, err=True)
        elif line.startswith("note:"):
            click.secho(line, fg="yellow")
        else:
            click.echo(line)


def print_summary(result) -> None:
    """Print a stage's `StageResult.summary` lines: what every command shows when it succeeds."""
    echo_summary(result.summary)


def register_commands() -> None:
    """Add every area's COMMANDS to the group (idempotent)."""
    for name in COMMAND_MODULES:
        for command in importlib.import_module(name).COMMANDS:
            if command.name not in cli.commands:
                cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user mistakes become one red line and exit status 2."""
    register_commands()
    try:
        cli.main(args=argv, prog_name="landscape", standalone_mode=False)
    except click.exceptions.Abort:
        click.secho("aborted", fg="red", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except StorageError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
    except LandscapeError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.secho("interrupted", fg="red", err=True)
        sys.exit(130)
    except OSError as exc:  # unwritable --out, disk full, a file where a folder should be ...
        click.secho(f"error: {os_error_message(exc)}", fg="red", err=True)
        sys.exit(1)



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
