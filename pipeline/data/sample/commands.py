"""`landscape style-oracle`: the sample dataset's style ceiling as a folder scored like any other."""

from __future__ import annotations

import click

from ...core.cli import config_options, print_summary


@click.command("style-oracle")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Preprocessed folder of a sample dataset (artifacts/data/<id>).")
@click.option("--split", default="val", show_default=True, type=click.Choice(["val", "test"]),
              help="Which split's maps to paint.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder, e.g. artifacts/generated/style-oracle/val.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@config_options
def style_oracle(data_dir, split, out, quiet, cfg):
    """Paint each map of a sample dataset's split in its reference photo's own style: the images a
    generator that follows the reference perfectly would make (the style term's ceiling)."""
    from ...core.artifacts import manifest_hash
    from ...core.inputs import resolve_split
    from .oracle import run_style_oracle

    paths = resolve_split(data_dir, split)
    result = run_style_oracle(cfg, paths, out, progress=not quiet,
                              inputs={"data": manifest_hash(data_dir)})
    print_summary(result)


COMMANDS: list = [style_oracle]
