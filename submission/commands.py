"""Subcommands of `landscape` for this package (collected by `pipeline.cli`)."""

from __future__ import annotations

import click

from pipeline.core.cli import config_options


@click.command("package")
@click.option(
    "--generated",
    "generated_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder of generated <stem>.jpg images (artifacts/generated/<exp>/test).",
)
@click.option(
    "--labels",
    "labels_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder of the test label maps <stem>.png (data/test/labels or val_B_labels_resized).",
)
@click.option(
    "--data",
    "data_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Instead of --labels: a preprocess folder (artifacts/data/<id>); its test maps are used.",
)
@click.option(
    "--out",
    "out_zip",
    required=True,
    type=click.Path(dir_okay=False),
    help="Zip to write, e.g. artifacts/submission/<exp>.zip; manifest and picks go to <exp>/ beside it.",
)
@click.option(
    "--scores",
    "scores_dir",
    default=None,
    type=click.Path(),
    help="Evaluate folder of these images (artifacts/eval/<exp>/<split>) or its per_image.csv;"
    " used to pick the expert-vote images.",
)
@click.option(
    "--allow-unfinished",
    is_flag=True,
    help="Accept a folder without a finished `generate` manifest (e.g. images made by another"
    " tool); every image is still checked.",
)
@click.option(
    "--scores-optional",
    is_flag=True,
    help="When --scores is missing, unfinished, stale or of other images, package without"
    " expert picks (and say why) instead of failing; for Make recipes.",
)
@config_options
def package_command(cfg, generated_dir, labels_dir, data_dir, out_zip, scores_dir, allow_unfinished, scores_optional):
    """Validate generated images against the test maps and write the upload zip."""
    from pipeline.core.config import config_hash

    from pipeline.core.inputs import resolve_split

    from .package import meta_dir_for, run_package

    if (labels_dir is None) == (data_dir is None):
        raise click.UsageError("give the test maps with exactly one of --labels DIR or --data DIR")
    if data_dir is not None:
        labels_dir = str(resolve_split(data_dir, "test").labels_dir)

    manifest = run_package(
        generated_dir,
        labels_dir,
        out_zip,
        scores_dir,
        cfg.package.expert_picks,
        allow_unfinished=allow_unfinished,
        scores_optional=scores_optional,
        config_hash=config_hash(cfg, "package"),
    )
    z = manifest["extra"]["zip"]
    meta = meta_dir_for(out_zip)
    click.echo(f"validated {manifest['counts']['images']} images in {generated_dir} against {labels_dir}")
    for note in manifest["extra"]["notes"]:
        click.secho(f"note: {note}", fg="yellow")
    click.echo(f"wrote {out_zip}: {manifest['counts']['images']} entries, {z['size'] / 1e6:.1f} MB, sha256 {z['sha256']}")
    click.echo(f"manifest: {meta / 'manifest.json'}")
    picks = manifest["extra"]["expert_picks"]
    if picks:
        click.echo(f"expert-vote picks ({manifest['extra']['expert_note']}):")
        click.echo(f"  {'rank':>4}  {'stem':<24} {'mask_acc':>8} {'style':>8} {'aesthetic':>9} {'product':>8}  file")
        for p in picks:
            click.echo(
                f"  {p['rank']:>4}  {p['stem']:<24} {p['mask_accuracy']:8.4f} {p['style']:8.4f}"
                f" {p['aesthetic']:9.4f} {p['product']:8.4f}  {meta / p['file']}"
            )
    else:
        click.secho(manifest["extra"]["expert_note"], fg="yellow")


COMMANDS: list = [package_command]
