"""Subcommands of `landscape` for this package (collected by `pipeline.cli`): train, generate, test."""

from __future__ import annotations

import sys

import click

from .core.cli import config_options


@click.command("train")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Preprocessed data folder (artifacts/data/<id>).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder (artifacts/runs/<exp>).")
@click.option("--resume", is_flag=True,
              help="Continue from the newest checkpoint in --out (a fresh start when none).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@config_options
def train(data_dir, out_dir, resume, quiet, cfg):
    """Train the ECGAN (or SPADE) generator; Ctrl-C saves a checkpoint first."""
    from .train import TrainingInterrupted, run_train

    try:
        manifest = run_train(cfg, data_dir, out_dir, resume=resume, progress=not quiet)
    except TrainingInterrupted as exc:
        click.secho(str(exc), fg="yellow", err=True)
        sys.exit(130)
    if manifest:
        counts = manifest["counts"]
        click.echo(f"train: {counts['steps']} steps on {counts['train_images']} images -> {out_dir}"
                   f" ({manifest['extra']['ema']})")


def _generate_options(func):
    func = click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
                        help="Weights file (a checkpoint of the run; default: its EMA generator).")(func)
    func = click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                        help="Override a key of the run's config, e.g. generate.colour_transfer=none.")(func)
    func = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
                        help="Force the device (default: the run config's `device`).")(func)
    func = click.option("--quiet", is_flag=True, help="No progress bar.")(func)
    return func


def _sets(overrides, device) -> list[str]:
    sets = list(overrides)
    if device is not None:
        sets.append(f'device="{device}"')
    return sets


@click.command("generate")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Training run folder (artifacts/runs/<exp>).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Preprocessed data folder; with --split picks the maps, pairs and references.")
@click.option("--split", type=click.Choice(["val", "test"]), default=None,
              help="Split of --data to generate.")
@click.option("--labels", "labels_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of label maps (instead of --data/--split).")
@click.option("--pairs", "pairs_json", type=click.Path(dir_okay=False), default=None,
              help='Pairing json {"<map>.png": "<reference>.jpg"}.')
@click.option("--refs", "refs_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of the reference photos.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder (artifacts/generated/<exp>/<split>).")
@_generate_options
def generate(run_dir, data_dir, split, labels_dir, pairs_json, refs_dir, out_dir, checkpoint,
             overrides, device, quiet):
    """Generate one <label stem>.jpg (512x384) per label map with the run's EMA generator."""
    from .core.errors import ConfigError
    from .generate import run_generate

    explicit = (labels_dir, pairs_json, refs_dir)
    if data_dir is not None or split is not None:
        if data_dir is None or split is None or any(explicit):
            raise ConfigError("give either --data DIR --split val|test, or --labels DIR --pairs"
                              " JSON --refs DIR (not a mix)")
        from .data.splits import resolve_split

        paths = resolve_split(data_dir, split)
        labels_dir, pairs_json, refs_dir = paths.labels_dir, paths.pairs_json, paths.refs_dir
    elif not all(explicit):
        raise ConfigError("give either --data DIR --split val|test, or all of --labels DIR"
                          " --pairs JSON --refs DIR")
    manifest = run_generate(run_dir, labels_dir, pairs_json, refs_dir, out_dir,
                            _sets(overrides, device), checkpoint=checkpoint, split=split or "",
                            progress=not quiet)
    c = manifest["counts"]
    now = "up to date, nothing to do" if manifest.get("up_to_date") else f"{c['generated_now']} made now"
    click.echo(f"generate: {c['images']} images in {out_dir} ({now})")


@click.command("test")
@click.option("--input_path", "input_path", required=True, type=click.Path(file_okay=False),
              help="Folder with the label maps and label_to_img.json.")
@click.option("--img_path", "img_path", required=True, type=click.Path(file_okay=False),
              help="Folder of the reference (training) photos.")
@click.option("--output_path", "output_path", required=True, type=click.Path(file_okay=False),
              help="Where the images go.")
@click.option("--run", "run_dir", default="artifacts/runs/ecgan", show_default=True,
              type=click.Path(file_okay=False), help="Training run folder.")
@_generate_options
def test_alias(input_path, img_path, output_path, run_dir, checkpoint, overrides, device, quiet):
    """The entries' familiar call: `test --input_path --img_path --output_path` (= generate)."""
    from pathlib import Path

    from .generate import run_generate

    manifest = run_generate(run_dir, input_path, Path(input_path) / "label_to_img.json", img_path,
                            output_path, _sets(overrides, device), checkpoint=checkpoint,
                            split="test", progress=not quiet)
    c = manifest["counts"]
    now = "up to date, nothing to do" if manifest.get("up_to_date") else f"{c['generated_now']} made now"
    click.echo(f"test: {c['images']} images in {output_path} ({now})")


COMMANDS: list = [train, generate, test_alias]
