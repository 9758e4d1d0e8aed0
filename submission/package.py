"""The package stage: the upload zip, its manifest and the expert-vote picks.

`run_package` validates the generated folder and the scores (writing nothing if anything is
wrong), then opens `<exp>/` (`claim_folder`: only a folder the package stage made, locked), writes
a flat zip of `<stem>.jpg` entries atomically and deterministically (same images -> same zip
bytes), re-opens it and checks every entry, copies the images picked for the expert vote, and
ends with the manifest.

Outputs, for `--out artifacts/submission/<exp>.zip`:

    artifacts/submission/<exp>.zip                 the upload: <stem>.jpg entries only, stored
    artifacts/submission/<exp>/manifest.json       stage "package": sha256 of the zip and of
                                                   every image, the picks and their scores
    artifacts/submission/<exp>/expert/<stem>.jpg   the images picked for the expert vote

Pure Python + Pillow: needs neither jittor nor torch.
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.artifacts import (
    MANIFEST,
    OWNER_MARK,
    StageResult,
    atomic_path,
    atomic_write_bytes,
    check_replaceable,
    claim_folder,
    manifest_hash,
    read_manifest,
    sha256_bytes,
    sha256_file,
    write_manifest,
)
from pipeline.core.config import Config, config_hash
from pipeline.core.errors import ArtifactError, ConfigError, DatasetError
from pipeline.core.inputs import resolve_inputs

from .scores import Pick, choose_picks
from .validate import IMAGE_SUFFIX, SUBMISSION_SIZE, ValidatedFolder, jpeg_problems, validate_generated

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # earliest date zip can store: fixed so the bytes are reproducible
EXPERT_DIR = "expert"


@dataclass(frozen=True)
class PackageInputs:
    """The generated folder, the test maps it must cover, and (optional) its per-image scores:
    an evaluate folder or its per_image.csv."""

    generated_dir: Path
    labels_dir: Path
    scores: Path | None = None


def resolve_package_inputs(generated_dir: str | Path, *, labels_dir: str | Path | None = None,
                           data_dir: str | Path | None = None, scores: str | Path | None = None) -> PackageInputs:
    """The test maps from exactly one of --labels DIR or --data DIR (its test split)."""
    if (labels_dir is None) == (data_dir is None):
        raise ConfigError("give the test maps with exactly one of --labels DIR or --data DIR")
    found = resolve_inputs(data_dir, "test" if data_dir is not None else None, need=("labels",),
                           labels=labels_dir)
    return PackageInputs(Path(generated_dir), found.labels_dir, Path(scores) if scores is not None else None)


def meta_dir_for(out_zip: str | Path) -> Path:
    """The folder beside `<exp>.zip` that holds its manifest and expert picks: `<exp>/`."""
    return Path(out_zip).with_suffix("")


# ---------------------------------------------------------------------------- zip
def _zip_info(name: str) -> zipfile.ZipInfo:
    """A zip entry header that does not depend on the file's time, the platform or the umask."""
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED  # JPEG does not compress further
    info.create_system = 3  # unix, whatever machine writes it
    info.external_attr = 0o100644 << 16  # regular file, rw-r--r--
    return info


def write_zip(path: Path, files: dict[str, Path]) -> dict[str, str]:
    """Write a flat zip of `{entry name: file}` in sorted name order with fixed headers.

    Returns {entry name: sha256 of the bytes stored}. One file is in memory at a time.
    """
    digests = {}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name in sorted(files):
            data = Path(files[name]).read_bytes()
            zf.writestr(_zip_info(name), data)
            digests[name] = sha256_bytes(data)
    return digests


def verify_zip(path: Path, expected: dict[str, str], size: tuple[int, int] = SUBMISSION_SIZE) -> list[str]:
    """Re-open the zip: entry names, CRCs, sha256 against `expected` {name: sha256}, decode, size.

    Returns the problems found (empty list = the zip is good).
    """
    problems = []
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if sorted(names) != sorted(expected) or len(names) != len(set(names)):
                extra = sorted(set(names) - set(expected))[:5]
                lost = sorted(set(expected) - set(names))[:5]
                problems.append(f"entries differ from the images (extra {extra}, missing {lost})")
            bad = zf.testzip()
            if bad is not None:
                problems.append(f"{bad}: CRC check failed")
            for name in names:
                if "/" in name or "\\" in name:
                    problems.append(f"{name}: entry is not at the top level")
                try:
                    data = zf.read(name)
                except (zipfile.BadZipFile, OSError) as exc:
                    problems.append(f"{name}: cannot read it back ({exc})")
                    continue
                if name in expected and sha256_bytes(data) != expected[name]:
                    problems.append(f"{name}: bytes differ from the source image")
                problems.extend(jpeg_problems(data, name, size))
    except (zipfile.BadZipFile, OSError) as exc:
        problems.append(f"cannot re-open the zip ({exc})")
    return problems


# ---------------------------------------------------------------------------- the stage
def check_out(out_zip: Path, generated_dir: Path) -> None:
    """Refuse an --out that is not a .zip, lies inside the generated folder, or would replace a
    zip or a `<exp>/` folder that the package stage did not make."""
    if out_zip.suffix != ".zip":
        raise DatasetError(f"--out {out_zip}: must be a .zip file name, e.g. artifacts/submission/<exp>.zip")
    meta = meta_dir_for(out_zip)
    if generated_dir.resolve() in (meta.resolve(), *meta.resolve().parents):
        raise DatasetError(f"--out {out_zip}: would write inside the generated folder {generated_dir}")
    check_replaceable(meta, "package")
    if out_zip.exists() and not ((meta / MANIFEST).is_file() or (meta / OWNER_MARK).is_file()):
        raise ArtifactError(f"{out_zip}: exists and was not written by `landscape package` (no {meta.name}/"
                            " folder of its own beside it); choose another --out or move it away yourself")


def write_checked_zip(out_zip: Path, files: dict[str, Path], size: tuple[int, int]) -> dict[str, str]:
    """Write the zip beside `out_zip`, re-check every entry, then rename it onto `out_zip`; return
    {entry: sha256}. On a failed check nothing is kept and the old zip stays."""
    with atomic_path(out_zip) as tmp:
        digests = write_zip(tmp, files)
        problems = verify_zip(tmp, digests, size)
        if problems:
            raise ArtifactError(
                f"{out_zip}: the written zip failed its check ({'; '.join(problems[:5])});"
                " nothing was kept. Check the disk (space, errors) and run the command again"
            )
    return digests


def copy_picks(out_zip: Path, expert: Path, chosen: list[Pick]) -> None:
    """Copy the picked images, as stored in the verified zip, into `expert/` (emptied first: no
    pick of an earlier run survives)."""
    if expert.exists():
        shutil.rmtree(expert)  # inside the package stage's own, locked folder
    with zipfile.ZipFile(out_zip) as zf:
        for pick in chosen:
            name = f"{pick.stem}{IMAGE_SUFFIX}"
            atomic_write_bytes(expert / name, zf.read(name))


def _pick_record(p: Pick) -> dict:
    return {"rank": p.rank, "stem": p.stem, "file": f"{EXPERT_DIR}/{p.stem}{IMAGE_SUFFIX}",
            "mask_accuracy": p.mask_accuracy, "style": p.style, "aesthetic": p.aesthetic,
            "product": p.product}


def _manifest_extra(out_zip: Path, digests: dict, folder: ValidatedFolder, picks: tuple, flags: dict,
                    size: tuple[int, int]) -> dict:
    """The manifest's "extra": the zip (sha256, size, entries), the inputs, the flags, the picks."""
    chosen, source, note = picks
    return {
        "zip": {"path": str(out_zip), "name": out_zip.name, "sha256": sha256_file(out_zip),
                "size": out_zip.stat().st_size, "entries": digests},
        "generated": str(folder.folder), "labels": str(folder.labels), "image_size": list(size),
        **flags, "scores": source["path"] if source else "",
        "expert_picks": [_pick_record(p) for p in chosen], "expert_note": note, "notes": folder.notes,
    }


def run_package(
    cfg: Config,
    inputs: PackageInputs,
    out: str | Path,
    *,
    progress: bool = True,  # noqa: ARG001 - the stage shape; packaging shows no progress bar
    allow_unfinished: bool = False,
    scores_optional: bool = False,
    size: tuple[int, int] = SUBMISSION_SIZE,
) -> StageResult:
    """Validate `inputs.generated_dir` against the maps in `inputs.labels_dir`, write the zip `out`
    and its `<exp>/` folder; return StageResult(the package manifest, the lines the command prints).

    The `cfg.package.expert_picks` best images by the scores' mask_accuracy * style * aesthetic
    are copied to `<exp>/expert/`. allow_unfinished: accept a folder without a finished generate
    manifest. scores_optional: unusable scores mean no picks (and a note saying why), not an
    error. Raises DatasetError / ArtifactError before writing anything when an input is wrong.
    """
    generated, out_zip = inputs.generated_dir, Path(out)
    check_out(out_zip, generated)
    folder = validate_generated(generated, inputs.labels_dir, allow_unfinished=allow_unfinished, size=size)
    picks = choose_picks(inputs.scores, generated, folder.images, cfg.package.expert_picks, scores_optional)
    chosen, source = picks[:2]
    files = {f"{stem}{IMAGE_SUFFIX}": p for stem, p in folder.images.items()}
    with claim_folder(meta_dir_for(out_zip), "package") as meta:  # drops the old manifest first
        digests = write_checked_zip(out_zip, files, size)
        copy_picks(out_zip, meta / EXPERT_DIR, chosen)
        record = {"generated": manifest_hash(generated)} if folder.manifest is not None else {}
        if source and source["manifest_hash"]:
            record["scores"] = source["manifest_hash"]
        flags = {"allow_unfinished": allow_unfinished, "scores_optional": scores_optional}
        manifest = write_manifest(
            meta, "package", config_hash=config_hash(cfg, "package"), inputs=record,
            counts={"images": len(digests), "expert_picks": len(chosen)},
            extra=_manifest_extra(out_zip, digests, folder, picks, flags, size),
        )
    return StageResult(manifest, package_summary(manifest, meta_dir_for(out_zip)))


def package_summary(manifest: dict, meta: Path) -> list[str]:
    """The lines `landscape package` prints: what was validated and written, and the picks."""
    extra, n = manifest["extra"], manifest["counts"]["images"]
    z = extra["zip"]
    lines = [f"validated {n} images in {extra['generated']} against {extra['labels']}"]
    lines += [f"note: {note}" for note in extra["notes"]]
    lines.append(f"wrote {z['path']}: {n} entries, {z['size'] / 1e6:.1f} MB, sha256 {z['sha256']}")
    lines.append(f"manifest: {meta / MANIFEST}")
    if not extra["expert_picks"]:
        return lines + [f"note: {extra['expert_note']}"]
    lines.append(f"expert-vote picks ({extra['expert_note']}):")
    lines.append(f"  {'rank':>4}  {'stem':<24} {'mask_acc':>8} {'style':>8} {'aesthetic':>9} {'product':>8}  file")
    lines += [f"  {p['rank']:>4}  {p['stem']:<24} {p['mask_accuracy']:8.4f} {p['style']:8.4f}"
              f" {p['aesthetic']:9.4f} {p['product']:8.4f}  {meta / p['file']}" for p in extra["expert_picks"]]
    return lines


def check_package(out_zip: str | Path) -> dict:
    """Re-check a finished package: manifest, expert files and the zip's sha256; return the manifest."""
    out_zip = Path(out_zip)
    manifest = read_manifest(meta_dir_for(out_zip), "package", deep=True)
    if not out_zip.is_file() or sha256_file(out_zip) != manifest["extra"]["zip"]["sha256"]:
        raise ArtifactError(
            f"{out_zip}: missing or changed since it was packaged; run `landscape package` again"
        )
    return manifest
