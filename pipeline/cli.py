"""`landscape`: the click group of every stage.

Each area keeps its subcommands in its own `commands` module (a list `COMMANDS`); the heavy
imports (jittor, torch) happen inside the commands, so `landscape --help` is instant and the
Jittor and PyTorch sides never load each other.
"""

from __future__ import annotations

import importlib
import sys

import click

from .errors import LandscapeError

COMMAND_MODULES = (
    "pipeline.data.commands",
    "pipeline.commands",
    "evaluation.commands",
    "submission.commands",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="landscape-pipeline")
def cli() -> None:
    """Style- and semantics-guided landscape synthesis: preprocess, train, generate,
    evaluate and package a Jittor AI Challenge submission."""


for _name in COMMAND_MODULES:
    for _command in importlib.import_module(_name).COMMANDS:
        cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user mistakes become one red line and exit status 2."""
    try:
        cli.main(args=argv, prog_name="landscape", standalone_mode=False)
    except click.exceptions.Abort:
        click.secho("aborted", fg="red", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LandscapeError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.secho("interrupted", fg="red", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
