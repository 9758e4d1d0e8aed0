"""The VGG19 of the training's perceptual loss (`loss.vgg_weights`), made by `landscape weights`.

The loss (pipeline/model/losses.py `load_vgg19`, Jittor) reads a .safetensors/.npz file of
torchvision names `features.<i>.weight` / `features.<i>.bias` for the 13 convs up to relu5_1
(index 28). This module writes exactly those tensors, float32, to weights/vgg19.safetensors from
torchvision's `vgg19(weights=IMAGENET1K_V1)` file `vgg19-dcbb9e9d.pth`, taken from (first found):
weights/, the torch hub cache, or a download of torchvision's URL (online only; streamed to the
system temp and checked against the sha256 prefix in its name, as torch.hub does). A .pth is read
with torch.load(weights_only=True) only and checked against torchvision's VGG19 layout (strict
load into `make_layers(cfgs["E"])`) before anything is written. The output's safetensors
metadata records the source and its sha256; the table shows the output's sha256.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from pipeline.core.artifacts import atomic_path, sha256_file
from pipeline.core.errors import ArtifactError

VGG19_FILE = "vgg19.safetensors"
VGG19_PTH = "vgg19-dcbb9e9d.pth"  # torchvision's VGG19_Weights.IMAGENET1K_V1 file
VGG19_URL = "https://download.pytorch.org/models/" + VGG19_PTH
VGG19_LAST_CONV = 28  # relu5_1 follows it; the loss reads no deeper
ROW_NAME = "VGG19 (training's perceptual loss, loss.vgg_weights)"


def vgg19_layout() -> dict[str, tuple[int, ...]]:
    """{key: shape} the loss reads, from torchvision's own VGG19 ("E") feature layers."""
    from torchvision.models.vgg import cfgs, make_layers

    features = make_layers(cfgs["E"])
    return {f"features.{k}": tuple(v.shape) for k, v in features.state_dict().items()
            if int(k.split(".")[0]) <= VGG19_LAST_CONV}


def _source_hash_ok(sha: str) -> bool:
    return sha.startswith(VGG19_PTH.split("-")[1].split(".")[0])


def read_vgg19_pth(src: Path) -> dict[str, torch.Tensor]:
    """The loss's tensors from a torchvision VGG19 .pth; ArtifactError naming the file otherwise."""
    from torchvision.models.vgg import cfgs, make_layers

    fix = f"get {VGG19_URL} again and place it as {src}"
    try:
        state = torch.load(str(src), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated file, pickled objects, not a torch file
        raise ArtifactError(f"{src}: not a readable plain tensor state dict ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:160]}); {fix}") from None
    if not isinstance(state, dict):
        raise ArtifactError(f"{src}: expected a state dict, got {type(state).__name__}; {fix}")
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    try:
        make_layers(cfgs["E"]).load_state_dict(features, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise ArtifactError(f"{src}: not torchvision's VGG19 layout ({detail}); {fix}") from None
    return {k: state[k].float().contiguous() for k in vgg19_layout()}


def convert_vgg19(src: Path, dst: Path) -> str:
    """Write the loss's tensors of `src` (.pth) to `dst` (.safetensors) atomically; returns the
    sha256 of `src`, also stored in the file's metadata."""
    tensors = read_vgg19_pth(src)
    src_sha = sha256_file(src)
    meta = {"source": src.name, "source_sha256": src_sha,
            "layout": "torchvision vgg19 features.<i>.weight/bias, convs 0..28 (relu5_1)"}
    with atomic_path(dst) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return src_sha


def vgg19_file_problem(path: Path) -> str:
    """'' when `path` holds exactly the loss's keys and shapes, else what differs."""
    want = vgg19_layout()
    try:
        with safe_open(str(path), framework="pt") as f:
            got = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - not a safetensors file
        return f"not a safetensors file ({type(exc).__name__})"
    if got != want:
        wrong = sorted(set(got) ^ set(want)) or sorted(k for k in want if got[k] != want[k])
        return f"not the VGG19 layout the loss reads (differs at {', '.join(wrong[:3])})"
    return ""


def _download(dst_dir: Path) -> Path:
    """Stream torchvision's VGG19 .pth into dst_dir (the system temp); check its sha256 prefix."""
    got, digest = dst_dir / VGG19_PTH, hashlib.sha256()
    with urllib.request.urlopen(VGG19_URL, timeout=30) as resp, open(got, "wb") as fh:  # noqa: S310
        for chunk in iter(lambda: resp.read(1 << 20), b""):
            digest.update(chunk)
            fh.write(chunk)
    if not _source_hash_ok(digest.hexdigest()):
        raise ArtifactError(f"{VGG19_URL}: downloaded file's sha256 {digest.hexdigest()[:16]}... does not"
                            f" match its name {VGG19_PTH}")
    return got


def _hub_cached() -> Path | None:
    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_PTH
    return cached if cached.is_file() else None


def _make(out: Path, pth: Path, download: bool, log: Callable[[str], None]) -> tuple[str, str]:
    """(status, note) after converting a placed / cached / downloaded .pth into `out`."""
    src = pth if pth.is_file() else _hub_cached()
    if src is not None:
        log(f"converting {src} into {out} ...")
        src_sha = convert_vgg19(src, out)
        note = "" if _source_hash_ok(src_sha) else (
            f"note: {src.name} is not torchvision's IMAGENET1K_V1 file (sha256 {src_sha[:16]}...)")
        return "converted", note
    if not download:
        return "MISSING", ""
    tmp = Path(tempfile.mkdtemp(prefix="landscape-vgg19-"))  # the system's temp, never weights/
    try:
        log(f"downloading {VGG19_URL} (548 MB) ...")
        convert_vgg19(_download(tmp), out)
        return "downloaded", ""
    except Exception as exc:  # noqa: BLE001 - offline or refused: report, do not fail
        log(f"could not download VGG19 ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})")
        return "MISSING", ""
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def vgg19_row(wdir: Path, download: bool, log: Callable[[str], None]):
    """The table row: present / converted / downloaded (with the config line) / unknown / MISSING."""
    from .weights import WeightStatus

    out, pth = wdir / VGG19_FILE, wdir / VGG19_PTH
    use = f'set it with --set loss.vgg_weights="{out}" (or [loss] vgg_weights = "{out}" in the config)'
    if out.is_file():
        problem = vgg19_file_problem(out)
        if problem:
            return WeightStatus(ROW_NAME, str(out), "unknown", sha256_file(out), (
                f"{problem}; left as it is. Move it away and re-run `landscape weights`"))
        return WeightStatus(ROW_NAME, str(out), "present", sha256_file(out), use)
    status, note = _make(out, pth, download, log)
    if status == "MISSING":
        return WeightStatus(ROW_NAME, str(out), status, "", (
            f"download {VGG19_URL} into {pth} and re-run `landscape weights` (it converts the .pth"
            f" to {out}; the .pth may be deleted after)"))
    return WeightStatus(ROW_NAME, str(out), status, sha256_file(out), "; ".join(filter(None, [use, note])))
