"""Subcommands of `landscape` for this package (collected by `pipeline.cli`)."""

from __future__ import annotations

import click

from ..core.cli import config_options, print_summary


@click.command("sample-data")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option("--train", "n_train", default=200, show_default=True, type=int,
              help="Training pairs (photo + label map).")
@click.option("--test", "n_test", default=50, show_default=True, type=int,
              help="Test label maps (no photos) paired with training photos.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same bytes.")
@click.option("--width", default=512, show_default=True, type=int, help="Image width.")
@click.option("--height", default=384, show_default=True, type=int, help="Image height.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sample_data(out, n_train, n_test, seed, width, height, quiet):
    """Write the built-in procedural sample dataset in the competition's layout."""
    from .sample import write_sample_dataset

    manifest = write_sample_dataset(out, n_train, n_test, seed, height=height, width=width,
                                    progress=not quiet)
    extra = manifest["extra"]
    click.echo(
        f"sample-data: {n_train} training pairs and {n_test} test maps ({width}x{height}, seed "
        f"{seed}, {len(extra['classes'])} classes) in {out} "
        f"[{(n_train + n_test) / max(extra['seconds'], 1e-9):.1f} pairs/s]"
    )


@click.command("preprocess")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Dataset root in the competition layout (train/imgs, train/labels, test/...).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder, e.g. artifacts/data/<id>.")
@click.option("--train-imgs", type=click.Path(file_okay=False), default=None,
              help="Training photos folder (default: DATA/train/imgs).")
@click.option("--train-labels", type=click.Path(file_okay=False), default=None,
              help="Training label maps folder (default: DATA/train/labels).")
@click.option("--test-labels", type=click.Path(file_okay=False), default=None,
              help="Test label maps folder (default: DATA/test/val_B_labels_resized or DATA/test/labels).")
@click.option("--pairs", type=click.Path(dir_okay=False), default=None,
              help="label_to_img.json (default: DATA/test/label_to_img.json or DATA/label_to_img.json).")
@click.option("--skip-bad", is_flag=True,
              help="Skip and list bad files instead of stopping at the first report.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@config_options
def preprocess(data_dir, out, train_imgs, train_labels, test_labels, pairs, skip_bad, quiet, cfg):
    """Validate a dataset, resize it, make edge maps and class statistics, split off validation."""
    from .layout import DatasetParts
    from .preprocess import run_preprocess

    parts = DatasetParts.find(data_dir, train_imgs=train_imgs, train_labels=train_labels,
                              test_labels=test_labels, pairs=pairs)
    print_summary(run_preprocess(cfg, parts, out, skip_bad=skip_bad, progress=not quiet))


COMMANDS: list = [sample_data, preprocess]
