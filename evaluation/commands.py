"""Subcommands of `landscape` for this package (collected by `pipeline.core.cli`).

Each command only reads its options and config, calls `run_<stage>` and prints the result's
summary. The stage modules are imported inside the commands: they load torch, transformers and
OpenCV, and `landscape --help` must stay instant.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.core.cli import config_options, echo_summary

_dir = click.Path(file_okay=False)
_file = click.Path(dir_okay=False)


@click.command("evaluate")
@click.option("--generated", type=_dir, default=None,
              help="Folder of generated <map stem>.jpg images (ours, a style oracle, or any).")
@click.option("--data", "data_dir", type=_dir, default=None,
              help="Preprocessed folder artifacts/data/<id>: gives labels, pairs, refs, training photos.")
@click.option("--split", type=click.Choice(["val", "test"]), default=None,
              help="Split of --data to score against (default val).")
@click.option("--labels", "labels_dir", type=_dir, default=None, help="Ground-truth label maps folder.")
@click.option("--pairs", "pairs_json", type=_file, default=None,
              help="label_to_img.json-style pairing {map.png: reference.jpg}.")
@click.option("--refs", "refs_dir", type=_dir, default=None, help="Folder of the reference photos.")
@click.option("--train-photos", "train_photos_dir", type=_dir, default=None,
              help="Training photos folder (FID/KID reference, minus photos named like a scored map;"
              " with --data: the training split only). Statistics cached.")
@click.option("--out", "out_dir", type=_dir, default=None,
              help="Output folder, e.g. artifacts/eval/<exp>/<split> (with --ground-truth: default a"
              " cache folder under evaluate.cache_dir).")
@click.option("--ground-truth", is_flag=True,
              help="Score the validation split's own photos of --data through the same scorer: the ceiling"
              " of every term (cached by data and scorer: a second call is instant).")
@click.option("--ceiling", "ceiling_dir", type=_dir, default=None,
              help="An earlier `evaluate --ground-truth` folder to use as the ceiling (default: found or"
              " computed in the cache from --data --split val).")
@click.option("--style-ceiling", "style_ceiling_dir", type=_dir, default=None,
              help="A `landscape style-oracle` folder (or its evaluation): the style term's ceiling"
              " (sample dataset only; unknown otherwise).")
@click.option("--no-ceiling", is_flag=True, help="Do not compute the ground truth when it is not cached.")
@click.option("--allow-any-size", is_flag=True,
              help="Score generated images of any size (a foreign folder); by default they must be"
              " 512x384 like a submission.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@config_options
def evaluate(generated, data_dir, split, labels_dir, pairs_json, refs_dir, train_photos_dir, out_dir,
             ground_truth, ceiling_dir, style_ceiling_dir, no_ceiling, allow_any_size, quiet, cfg):
    """Score generated images: mask accuracy, style, aesthetic, FID (KID beside it) and the A-board
    score, each beside its ceiling (the ground truth through the same scorer) and their ratio;
    writes scores.json, per_image.csv, report.html. --ground-truth scores the ceiling itself."""
    if ground_truth:
        if any((generated, ceiling_dir, style_ceiling_dir, labels_dir, pairs_json, refs_dir,
                train_photos_dir)) or not data_dir:
            raise click.UsageError("--ground-truth takes --data DIR [--split val] [--out DIR] only: the"
                                   " preprocessed split gives the photos, maps, references and reference set")
        from .ground_truth import run_ground_truth

        echo_summary(run_ground_truth(cfg, data_dir, split or "val", out_dir, progress=not quiet,
                                      log=click.echo).summary)
        return
    if not generated or not out_dir:
        raise click.UsageError("evaluate needs --generated DIR and --out DIR (or --ground-truth --data DIR)")
    from .evaluate import run_evaluate
    from .ground_truth import CeilingChoice
    from .inputs import resolve_inputs

    inputs = resolve_inputs(generated, data_dir=data_dir, split=split, labels_dir=labels_dir,
                            pairs_json=pairs_json, refs_dir=refs_dir, train_photos_dir=train_photos_dir)
    choice = CeilingChoice(folder=Path(ceiling_dir) if ceiling_dir else None,
                           style_folder=Path(style_ceiling_dir) if style_ceiling_dir else None,
                           compute=not no_ceiling)
    result = run_evaluate(cfg, inputs, out_dir, progress=not quiet, allow_any_size=allow_any_size,
                          ceiling=choice, log=click.echo)
    echo_summary(result.summary)


@click.command("fit-segformer")
@click.option("--data", "data_dir", required=True, type=_dir,
              help="Preprocessed folder artifacts/data/<id> (train/val photos and labels).")
@click.option("--out", "out_dir", required=True, type=_dir,
              help="Folder to save the SegFormer in (e.g. weights/segformer); only a new folder or an"
              " earlier fit-segformer output is replaced.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@config_options
def fit_segformer(data_dir, out_dir, quiet, cfg):
    """Fit the mask-accuracy scorer's SegFormer on the training labels; report validation
    pixel accuracy; save it with save_pretrained."""
    from .fit_segformer import run_fit_segformer

    echo_summary(run_fit_segformer(cfg, data_dir, out_dir, progress=not quiet, log=click.echo).summary)


@click.command("weights")
@click.option("--dir", "weights_dir", default="weights", show_default=True, type=_dir,
              help="Folder to fill.")
@click.option("--download/--no-download", default=True, show_default=True,
              help="Try the hub / GitHub / download.pytorch.org for SegFormer ADE20K, CLIP ViT-L/14, the"
              " LAION head and the perceptual loss's VGG19.")
def weights(weights_dir, download):
    """Fill weights/ (FID Inception converted offline; CLIP, LAION head, ADE20K SegFormer, VGG19
    downloaded when online) and print what is present with sha256."""
    from .weights import fill_weights, weights_summary

    echo_summary(weights_summary(fill_weights(weights_dir, download=download, log=click.echo)))


COMMANDS: list = [evaluate, fit_segformer, weights]
