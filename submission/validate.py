"""Check a generated folder against the test maps before it becomes the upload zip.

A valid folder holds exactly one `<stem>.jpg` for every label map `<stem>.png`, each a JPEG that
decodes completely, RGB, 512x384 (W x H), and nothing else except the generate stage's own
`manifest.json` and `.generate_state.json`. Every problem is collected first and reported together, one line each with the
file and the fix, in a `SubmissionError` (a `DatasetError`, so the CLI prints it without a
traceback).

Pure Python + Pillow: needs neither jittor nor torch.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFile, UnidentifiedImageError

from pipeline.core.artifacts import MANIFEST, OWNER_MARK, read_manifest
from pipeline.core.errors import ArtifactError, DatasetError
from pipeline.core.imageio import SUBMISSION_SIZE

IMAGE_SUFFIX = ".jpg"
MAP_SUFFIX = ".png"
REGENERATE = "re-run `make submit`"
# The generate stage's own files in its folder (manifest.json, the owner mark of `claim_folder`,
# pipeline.generate.STATE_FILE): bookkeeping, never zipped, never a problem.
STAGE_FILES = frozenset({MANIFEST, OWNER_MARK, ".generate_state.json"})
# Beyond this many lines of one kind the message shows the first ones and a count (the full list
# stays on the exception's `problems`): a 1,000-line error helps nobody.
MAX_LINES_PER_KIND = 10


class SubmissionError(DatasetError):
    """The generated folder is not a valid submission; `problems` lists every (kind, line)."""

    def __init__(self, header: str, problems: list[tuple[str, str]]):
        self.header = header
        self.problems = problems
        super().__init__(format_problems(header, problems))


def format_problems(header: str, problems: list[tuple[str, str]]) -> str:
    """`header` then one line per problem, long runs of one kind shortened to a count."""
    lines = [f"{header} ({len(problems)} problem{'s' if len(problems) != 1 else ''}):"]
    by_kind: dict[str, list[str]] = {}
    for kind, line in problems:
        by_kind.setdefault(kind, []).append(line)
    for kind, kind_lines in by_kind.items():
        shown = kind_lines if len(kind_lines) <= MAX_LINES_PER_KIND else kind_lines[:5]
        lines.extend(f"  - {line}" for line in shown)
        if len(shown) < len(kind_lines):
            lines.append(f"  - ... and {len(kind_lines) - len(shown)} more '{kind}' problems like these")
    return "\n".join(lines)


@dataclass(frozen=True)
class ValidatedFolder:
    """A generated folder that passed `validate_generated`."""

    folder: Path
    labels: Path
    images: dict[str, Path]  # stem -> <stem>.jpg, in sorted stem order
    manifest: dict | None  # the generate stage's manifest, None when allowed to be missing
    notes: list[str]  # harmless findings worth a line (leftover temp files of a killed run)


def map_stems(labels_dir: str | Path) -> list[str]:
    """Sorted stems of the label maps (`*.png`) in `labels_dir`; DatasetError when there are none."""
    labels = Path(labels_dir)
    if not labels.is_dir():
        raise DatasetError(
            f"{labels}: labels folder not found. Pass --labels the folder of test label maps"
            " (data/test/labels, or the organisers' val_B_labels_resized)."
        )
    stems = sorted(
        p.stem for p in labels.iterdir() if p.is_file() and p.suffix.lower() == MAP_SUFFIX
    )
    if not stems:
        raise DatasetError(
            f"{labels}: no label maps (*.png) in this folder. Pass --labels the folder of test"
            " label maps (data/test/labels, or the organisers' val_B_labels_resized)."
        )
    return stems


def jpeg_problems(data: bytes, name: str, size: tuple[int, int] = SUBMISSION_SIZE) -> list[str]:
    """What is wrong with `data` as a submission image named `name` (empty list = fine).

    The image is fully decoded (not just its header) with truncated-file tolerance off, so a
    file cut short by a killed writer fails.
    """
    fix = f"re-generate it ({REGENERATE})"
    if not data:
        return [f"{name}: empty file (0 bytes); {fix}"]
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a partial image must fail even if someone allowed it
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, mode, img_size = img.format, img.mode, img.size
            img.load()
    except UnidentifiedImageError:
        return [f"{name}: not an image Pillow can decode; {fix}"]
    except (OSError, SyntaxError, ValueError) as exc:
        return [f"{name}: truncated or corrupt image ({exc}); {fix}"]
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved
    problems = []
    if fmt != "JPEG":
        problems.append(f"{name}: is a {fmt} image named {IMAGE_SUFFIX}; re-save it as JPEG")
    elif not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        # Pillow decodes a JPEG that lost only its end marker; a complete file still ends with it.
        problems.append(f"{name}: truncated JPEG (no end-of-image marker); {fix}")
    if mode != "RGB":
        problems.append(
            f"{name}: colour mode {mode}, must be RGB; convert it"
            f" (Image.convert('RGB')) or {fix}"
        )
    if img_size != size:
        problems.append(
            f"{name}: {img_size[0]}x{img_size[1]} pixels, must be {size[0]}x{size[1]} (W x H); {fix}"
        )
    return problems


def _generate_manifest(folder: Path, allow_unfinished: bool) -> tuple[dict | None, list]:
    """The generate stage's manifest of `folder` and the problems found with it."""
    if not (folder / MANIFEST).is_file():
        if allow_unfinished:
            return None, []
        return None, [(
            "unfinished",
            f"{folder / MANIFEST}: missing, so generation did not finish: {REGENERATE}"
            " (or pass --allow-unfinished to package images made by another tool)",
        )]
    try:
        return read_manifest(folder, "generate"), []
    except ArtifactError as exc:
        if allow_unfinished:
            return None, []
        return None, [("manifest", f"{exc} Or pass --allow-unfinished to skip this check.")]


def _classify(p: Path, wanted: set[str], labels: Path, finished_at: float | None) -> tuple[str, str]:
    """What a folder entry is: ("image", ""), ("misnamed", line), ("note", line), or (kind, line)
    of a problem."""
    name = p.name
    if name.startswith(".") and name.endswith(".tmp"):
        if finished_at is not None and p.stat().st_mtime <= finished_at:
            # Left by a run killed before the one that finished: harmless, never zipped.
            return "note", (f"{p}: leftover temporary file of an earlier, killed generation"
                            " (the folder's manifest is newer); not packaged, safe to delete")
        return "temp", f"{p}: temporary file, so generation did not finish: {REGENERATE}"
    if name.startswith("."):
        return "hidden", f"{p}: hidden file, not part of a submission; delete it"
    if p.is_dir():
        return "subfolder", f"{p}: sub-folder; the zip must be flat: move or delete it"
    if not p.is_file():
        return "other", f"{p}: not a regular file; delete it"
    if p.suffix == IMAGE_SUFFIX and p.stem in wanted:
        return "image", ""
    if p.stem in wanted:
        return "misnamed", (f"{p}: wrong extension '{p.suffix}'; the submission needs {p.stem}{IMAGE_SUFFIX}"
                            f" (a JPEG): rename it, or re-save it as JPEG if it is not one")
    if p.suffix == IMAGE_SUFFIX:
        return "extra", f"{p}: no label map {p.stem}{MAP_SUFFIX} in {labels}; delete it"
    return "extra", f"{p}: not a <map stem>{IMAGE_SUFFIX} file; delete it"


def validate_generated(
    generated_dir: str | Path,
    labels_dir: str | Path,
    *,
    allow_unfinished: bool = False,
    size: tuple[int, int] = SUBMISSION_SIZE,
) -> ValidatedFolder:
    """Check `generated_dir` against the maps in `labels_dir`; raise `SubmissionError` listing
    every problem, else return the images by stem.

    allow_unfinished: accept a folder without a (valid) generate manifest, e.g. images made by
    another tool; every image check still runs.
    """
    folder, labels = Path(generated_dir), Path(labels_dir)
    stems = map_stems(labels)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: generated folder not found. Generate it first: `make submit`.")
    header = f"{folder} is not a valid submission for the {len(stems)} maps in {labels}"
    manifest, problems = _generate_manifest(folder, allow_unfinished)
    entries = [p for p in sorted(folder.iterdir(), key=lambda p: p.name) if p.name not in STAGE_FILES]
    if not entries:
        raise SubmissionError(header, [("empty", (
            f"{folder}: no images; expected {len(stems)} files <stem>{IMAGE_SUFFIX}, one per map."
            f" Generate them: {REGENERATE}"))])
    # A finished manifest (written last) dates the end of the generation that made the folder.
    finished_at = (folder / MANIFEST).stat().st_mtime if manifest is not None else None
    images, misnamed, notes = {}, set(), []
    for p in entries:
        kind, line = _classify(p, set(stems), labels, finished_at)
        if kind == "image":
            images[p.stem] = p
        elif kind == "note":
            notes.append(line)
        else:
            problems.append(("extension" if kind == "misnamed" else kind, line))
            if kind == "misnamed":
                misnamed.add(p.stem)  # reported once, not again as missing
    problems += [("missing", f"{folder / (stem + IMAGE_SUFFIX)}: missing (map {stem}{MAP_SUFFIX}); {REGENERATE}")
                 for stem in stems if stem not in images and stem not in misnamed]
    for stem, p in images.items():
        problems.extend(("image", line) for line in jpeg_problems(p.read_bytes(), str(p), size))
    if problems:
        raise SubmissionError(header, problems)
    return ValidatedFolder(folder, labels, dict(sorted(images.items())), manifest, notes)
