"""Subcommands of `landscape` for this package (collected by `pipeline.cli`).

Each command only reads its options and config, then calls `run_<stage>`; torch and
transformers are imported inside the commands so `landscape --help` stays instant.
"""

from __future__ import annotations

import click

from pipeline.core.cli import config_options

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
@click.option("--quiet", is_flag=True, help="No progress bars.")
@config_options
def evaluate(generated, data_dir, split, labels_dir, pairs_json, refs_dir, train_photos_dir,
             out_dir, quiet, cfg):
    """Score generated images: mask accuracy, style, aesthetic, FID and the A-board score;
    writes scores.json, per_image.csv, report.html."""
    from .evaluate import resolve_inputs, run_evaluate
    from .summary import summary_lines

    inputs = resolve_inputs(generated, data_dir=data_dir, split=split, labels_dir=labels_dir,
                            pairs_json=pairs_json, refs_dir=refs_dir, train_photos_dir=train_photos_dir)
    scores = run_evaluate(cfg, inputs, out_dir, progress=not quiet, log=click.echo)
    for line in summary_lines(scores):
        click.echo(line)
    if scores["stand_in"]:
        click.secho(scores["warning"], fg="red", bold=True, err=True)
    click.echo(f"wrote {out_dir}/scores.json, per_image.csv, report.html")


@click.command("fit-segformer")
@click.option("--data", "data_dir", required=True, type=_dir,
              help="Preprocessed folder artifacts/data/<id> (train/val photos and labels).")
@click.option("--out", "out_dir", required=True, type=_dir,
              help="Folder to save the SegFormer in (e.g. weights/segformer).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@config_options
def fit_segformer(data_dir, out_dir, quiet, cfg):
    """Fit the mask-accuracy scorer's SegFormer on the training labels; report validation
    pixel accuracy; save it with save_pretrained."""
    from .evaluate import resolve_device
    from .fit_segformer import run_fit_segformer

    device = resolve_device(cfg.device)
    res = run_fit_segformer(cfg, data_dir, out_dir, device, progress=not quiet, log=click.echo)
    click.echo(
        f"fit-segformer: validation pixel accuracy {res['val_pixel_accuracy']:.4f} after"
        f" {cfg.fit_segformer.steps} steps in {res['seconds']:.0f} s; saved to {res['out']}"
        f" (use it with --set evaluate.segformer={res['out']})"
    )


@click.command("weights")
@click.option("--dir", "weights_dir", default="weights", show_default=True, type=_dir,
              help="Folder to fill.")
@click.option("--download/--no-download", default=True, show_default=True,
              help="Try the hub / GitHub for SegFormer ADE20K, CLIP ViT-L/14 and the LAION head.")
def weights(weights_dir, download):
    """Fill weights/ (FID Inception converted offline; CLIP, LAION head, ADE20K SegFormer
    downloaded when online) and print what is present with sha256."""
    from .weights import fill_weights, format_table

    rows = fill_weights(weights_dir, download=download, log=click.echo)
    click.echo(format_table(rows))
    missing = [r for r in rows if r.status == "MISSING"]
    if missing:
        click.secho(
            f"{len(missing)} model(s) missing: place the files listed above, or run `landscape weights`"
            " on a machine that is online. Without CLIP + head the aesthetic term is a STAND-IN.",
            fg="yellow", err=True,
        )


COMMANDS: list = [evaluate, fit_segformer, weights]
