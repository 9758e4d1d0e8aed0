"""Subcommands of `landscape` for this package (collected by `pipeline.cli`): train, generate, test.

Each command parses its options, loads the config, calls `run_<stage>` and prints the result's
summary through `print_summary`: no stage logic here.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from pathlib import Path

import click

from .core.cli import config_options, print_summary


@click.command("train")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Preprocessed data folder (artifacts/data/<id>).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder (artifacts/runs/<exp>).")
@click.option("--resume", is_flag=True,
              help="Continue from the newest checkpoint in --out (a fresh start when none).")
@click.option("--allow-world-change", is_flag=True,
              help="Resume a run made with another number of processes (mpirun -np): its data "
                   "order and schedule are re-derived for the new one.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@config_options
def train(data_dir, out_dir, resume, allow_world_change, quiet, cfg):
    """Train the ECGAN (or SPADE) generator; Ctrl-C saves a checkpoint first."""
    from .train import TrainingInterrupted, run_train

    try:
        result = run_train(cfg, data_dir, out_dir, resume=resume, progress=not quiet,
                           allow_world_change=allow_world_change)
    except TrainingInterrupted as exc:
        click.secho(str(exc), fg="yellow", err=True)
        sys.exit(130)
    print_summary(result)


def trained_run_options(func):
    """--config, --set, --device, --checkpoint and --quiet of the commands that use a trained
    run; the config defaults to the run's own config.resolved.toml. The command needs a
    `run_dir` parameter and receives `cfg`."""

    @click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                  help="Experiment TOML file (default: the run's own config.resolved.toml).")
    @click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                  help="Override one config key (repeatable), e.g. --set generate.colour_transfer=none.")
    @click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
                  help="Force the device (default: the config's `device`).")
    @click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
                  help="Weights file (a checkpoint of the run; default: its EMA generator).")
    @click.option("--quiet", is_flag=True, help="No progress bar.")
    @functools.wraps(func)
    def wrapper(*args, config_path, overrides, device, **kwargs):
        from .generate import run_config

        sets = list(overrides) + ([f'device="{device}"'] if device is not None else [])
        return func(*args, cfg=run_config(kwargs["run_dir"], config_path, sets), **kwargs)

    return wrapper


def _generate(cfg, run_dir, checkpoint, maps, out, quiet) -> None:
    from .generate import GenerateInputs, run_generate

    inputs = GenerateInputs(Path(run_dir), maps, Path(checkpoint) if checkpoint else None)
    print_summary(run_generate(cfg, inputs, out, progress=not quiet))


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
@trained_run_options
def generate(run_dir, data_dir, split, labels_dir, pairs_json, refs_dir, out_dir, checkpoint, quiet, cfg):
    """Generate one <label stem>.jpg (512x384) per label map with the run's EMA generator."""
    from .core.inputs import resolve_inputs

    maps = resolve_inputs(data_dir, split, labels=labels_dir, pairs=pairs_json, refs=refs_dir)
    _generate(cfg, run_dir, checkpoint, maps, out_dir, quiet)


@click.command("test")
@click.option("--input_path", "input_path", required=True, type=click.Path(file_okay=False),
              help="Folder with the label maps and label_to_img.json.")
@click.option("--img_path", "img_path", required=True, type=click.Path(file_okay=False),
              help="Folder of the reference (training) photos.")
@click.option("--output_path", "output_path", required=True, type=click.Path(file_okay=False),
              help="Where the images go (a new folder, or one an earlier generate made).")
@click.option("--run", "run_dir", default="artifacts/runs/ecgan", show_default=True,
              type=click.Path(file_okay=False), help="Training run folder.")
@trained_run_options
def test_alias(input_path, img_path, output_path, run_dir, checkpoint, quiet, cfg):
    """The entries' familiar call: `test --input_path --img_path --output_path` (= generate)."""
    from .core.errors import DatasetError
    from .core.inputs import resolve_inputs

    pairs = Path(input_path) / "label_to_img.json"
    if not pairs.is_file():
        raise DatasetError(f"{pairs}: not found; --input_path must hold the label maps and label_to_img.json")
    maps = resolve_inputs(labels=input_path, pairs=pairs, refs=img_path)
    _generate(cfg, run_dir, checkpoint, dataclasses.replace(maps, split="test"), output_path, quiet)



@click.command("average")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Training run folder (artifacts/runs/<exp>).")
@click.option("--last", required=True, type=int, help="How many of the newest checkpoints to average.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Weights file to write (default RUN/average.safetensors).")
def average(run_dir, last, out_file):
    """Average the EMA generator/encoder weights of the run's last K checkpoints into one file."""
    from .average import run_average

    print_summary(run_average(run_dir, last, out_file))


def _comma_list(ctx, param, value):
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


@click.command("sweep")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Training run folder (artifacts/runs/<exp>).")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Preprocessed data folder: its val split is generated and scored.")
@click.option("--transfers", callback=_comma_list, default=None,
              help="Colour transfers, comma-separated; '@s' blends at strength s"
              " (default none,reinhard-lab,histogram-match,reinhard-lab@0.5).")
@click.option("--weights", callback=_comma_list, default=None,
              help="Weights files, comma-separated: ema, best, average or a path (default"
              " ema,best,average, each when present).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of the generated and scored rows (default artifacts/sweep/<run name>).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Experiment TOML file (default: the run's own config.resolved.toml).")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override one config key (repeatable), e.g. --set evaluate.segformer=DIR.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Force the device (default: the config's `device`).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def sweep(run_dir, data_dir, transfers, weights, out_dir, config_path, overrides, device, quiet):
    """Generate and score the val split with each colour transfer and weights file; print the
    table and write the best into RUN/choice.json (what `generate` and `make submit` then use)."""
    from .generate import RUN_CONFIG, run_config
    from .sweep import Scorer, run_sweep

    sets = list(overrides) + ([f'device="{device}"'] if device is not None else [])
    cfg = run_config(run_dir, config_path, sets, use_choice=False)
    scorer = Scorer(Path(config_path) if config_path else Path(run_dir) / RUN_CONFIG, tuple(sets))
    out = Path(out_dir) if out_dir else Path("artifacts") / "sweep" / Path(run_dir).resolve().name
    print_summary(run_sweep(cfg, run_dir, data_dir, out, scorer, transfers=transfers, weights=weights,
                            progress=not quiet, log=click.echo))


COMMANDS: list = [train, generate, test_alias, average, sweep]
