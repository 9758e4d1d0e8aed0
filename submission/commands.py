"""Subcommands of `landscape` for this package (collected by `pipeline.core.cli`)."""

from __future__ import annotations

import click

from pipeline.core.cli import config_options, echo_summary

from .package import resolve_package_inputs, run_package


@click.command("package")
@click.option("--generated", "generated_dir", required=True, type=click.Path(file_okay=False),
              help="Folder of generated <stem>.jpg images (artifacts/generated/<exp>/test).")
@click.option("--labels", "labels_dir", default=None, type=click.Path(file_okay=False),
              help="Folder of the test label maps <stem>.png (data/test/labels or val_B_labels_resized).")
@click.option("--data", "data_dir", default=None, type=click.Path(file_okay=False),
              help="Instead of --labels: a preprocess folder (artifacts/data/<id>); its test maps are used.")
@click.option("--out", "out_zip", required=True, type=click.Path(dir_okay=False),
              help="Zip to write, e.g. artifacts/submission/<exp>.zip; manifest and picks go to <exp>/ beside it.")
@click.option("--scores", "scores_dir", default=None, type=click.Path(),
              help="Evaluate folder of these images (artifacts/eval/<exp>/<split>) or its per_image.csv;"
              " used to pick the expert-vote images.")
@click.option("--allow-unfinished", is_flag=True,
              help="Accept a folder without a finished `generate` manifest (e.g. images made by another"
              " tool); every image is still checked.")
@click.option("--scores-optional", is_flag=True,
              help="When --scores is missing, unfinished, stale or of other images, package without"
              " expert picks (and say why) instead of failing; for Make recipes.")
@config_options
def package_command(cfg, generated_dir, labels_dir, data_dir, out_zip, scores_dir, allow_unfinished, scores_optional):
    """Validate generated images against the test maps and write the upload zip."""
    inputs = resolve_package_inputs(generated_dir, labels_dir=labels_dir, data_dir=data_dir, scores=scores_dir)
    result = run_package(cfg, inputs, out_zip, allow_unfinished=allow_unfinished, scores_optional=scores_optional)
    echo_summary(result.summary)


COMMANDS: list = [package_command]
