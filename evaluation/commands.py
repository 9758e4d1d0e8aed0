"""Subcommands of `landscape` for this package (collected by `pipeline.core.cli`).

Each command only reads its options and config, calls `run_<stage>` and prints the result's
summary. The stage modules are imported inside the commands: they load torch, transformers and
OpenCV, and `landscape --help` must stay instant.
"""

from __future__ import annotations

import click

from pipeline.core.cli import config_options, echo_summary

_dir = click.Path(file_okay=False)
_file = click.Path(dir_okay=False)


@click.command("evaluate")
@click.option("--generated", required=True, type=_dir,
              help="Folder of generated <map stem>.jpg images (ours, with manifest.json, or any).")
@click.option("--data", "data_dir", type=_dir, default=None,
              help="Preprocessed folder artifacts/data/<id>: gives labels, pairs, refs, training photos.")
@click.option("--split", type=click.Choice(["val", "test"]), default=None,
              help="Split of --data to score against (default val).")
@click.option("--labels", "labels_dir", type=_dir, default=None, help="Ground-truth label maps folder.")
@click.option("--pairs", "pairs_json", type=_file, default=None,
              help="label_to_img.json-style pairing {map.png: reference.jpg}.")
@click.option("--refs", "refs_dir", type=_dir, default=None, help="Folder of the reference photos.")
@click.option("--train-photos", "train_photos_dir", type=_dir, default=None,
              help="Training photos folder (FID statistics; cached).")
@click.option("--out", "out_dir", required=True, type=_dir,
              help="Output folder, e.g. artifacts/eval/<exp>/<split>.")
@click.option("--allow-any-size", is_flag=True,
              help="Score generated images of any size (a foreign folder); by default they must be"
              " 512x384 like a submission.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@config_options
def evaluate(generated, data_dir, split, labels_dir, pairs_json, refs_dir, train_photos_dir,
             out_dir, allow_any_size, quiet, cfg):
    """Score generated images: mask accuracy, style, aesthetic, FID and the A-board score;
    writes scores.json, per_image.csv, report.html."""
    from .evaluate import run_evaluate
    from .inputs import resolve_inputs

    inputs = resolve_inputs(generated, data_dir=data_dir, split=split, labels_dir=labels_dir,
                            pairs_json=pairs_json, refs_dir=refs_dir, train_photos_dir=train_photos_dir)
    result = run_evaluate(cfg, inputs, out_dir, progress=not quiet, allow_any_size=allow_any_size,
                          log=click.echo)
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
              help="Try the hub / GitHub for SegFormer ADE20K, CLIP ViT-L/14 and the LAION head.")
def weights(weights_dir, download):
    """Fill weights/ (FID Inception converted offline; CLIP, LAION head, ADE20K SegFormer
    downloaded when online) and print what is present with sha256."""
    from .weights import fill_weights, weights_summary

    echo_summary(weights_summary(fill_weights(weights_dir, download=download, log=click.echo)))


COMMANDS: list = [evaluate, fit_segformer, weights]
