"""`landscape weights` makes the perceptual loss's VGG19 file (evaluation/weights_vgg.py).

The expected layout is read from pipeline/model/losses.py's source (VGG19_CONVS): the evaluation
process never imports jittor; one slow test loads the file with `load_vgg19` in a subprocess."""

import ast
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import load_file
from torchvision.models.vgg import cfgs, make_layers

from evaluation import weights as weights_mod
from evaluation import weights_vgg
from evaluation.weights_vgg import VGG19_FILE, VGG19_PTH, VGG19_URL, vgg19_row
from pipeline.core.artifacts import sha256_file
from pipeline.core.errors import ArtifactError

from ..conftest import ROOT, run_cli


def _loss_layout() -> dict[str, tuple]:
    """{key: shape} that pipeline.model.losses.load_vgg19 reads, from VGG19_CONVS in its source."""
    tree = ast.parse((ROOT / "pipeline" / "model" / "losses.py").read_text())
    convs = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                 and any(getattr(t, "id", "") == "VGG19_CONVS" for t in n.targets))
    out = {}
    for index, cin, cout in convs:
        out[f"features.{index}.weight"] = (cout, cin, 3, 3)
        out[f"features.{index}.bias"] = (cout,)
    return out


def _random_vgg_pth(path, cfg="E", seed=0) -> dict:
    """A random-weight torchvision VGG (features only; a classifier key is ignored) saved as .pth."""
    torch.manual_seed(seed)
    state = {f"features.{k}": v for k, v in make_layers(cfgs[cfg]).state_dict().items()}
    state["classifier.6.bias"] = torch.zeros(1000)
    torch.save(state, path)
    return state


@pytest.fixture
def no_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # no VGG19 in the hub cache


def test_placed_pth_is_converted_to_exactly_the_losss_layout(tmp_path, no_hub_cache, monkeypatch):
    wdir = tmp_path / "weights"
    wdir.mkdir()
    state = _random_vgg_pth(wdir / VGG19_PTH)
    # through the command itself (the other rows stubbed: this test is about VGG19 only)
    monkeypatch.setattr(weights_mod, "_fid_row", lambda w, log: weights_mod.WeightStatus("FID", "", "present", "x", ""))
    run_cli("weights", "--dir", str(wdir), "--no-download")
    out = wdir / VGG19_FILE
    arrays = load_file(str(out))
    assert {k: v.shape for k, v in arrays.items()} == _loss_layout()
    for k, v in arrays.items():
        assert v.dtype == np.float32 and np.array_equal(v, state[k].numpy())
    with safe_open(str(out), framework="np") as f:
        assert f.metadata()["source_sha256"] == sha256_file(wdir / VGG19_PTH)
    # a second run finds it present; the table gives its sha256 and the config line
    row = vgg19_row(wdir, download=False, log=lambda s: None)
    assert row.status == "present" and row.sha256 == sha256_file(out)
    assert f'loss.vgg_weights="{out}"' in row.how
    table = weights_mod.format_table([row])
    assert row.sha256 in table and "loss.vgg_weights" in table


def test_the_converted_row_records_sha_and_flags_a_non_imagenet_file(tmp_path, no_hub_cache):
    _random_vgg_pth(tmp_path / VGG19_PTH)
    row = vgg19_row(tmp_path, download=False, log=lambda s: None)
    assert row.status == "converted" and row.sha256 == sha256_file(tmp_path / VGG19_FILE)
    assert "not torchvision's IMAGENET1K_V1 file" in row.how  # random weights: its sha256 differs


@pytest.mark.parametrize("content, match", [
    (b"not a torch file at all", "not a readable plain tensor state dict"),
    ("vgg16", "not torchvision's VGG19 layout"),
    ("object", "not a readable plain tensor state dict"),
    ("list", "expected a state dict"),
])
def test_a_corrupt_or_wrong_pth_is_refused_naming_the_file(tmp_path, no_hub_cache, content, match):
    pth = tmp_path / VGG19_PTH
    if content == "vgg16":
        _random_vgg_pth(pth, cfg="D")
    elif content == "object":
        torch.save({"features.0.weight": io.StringIO("pickled code")}, pth)
    elif content == "list":
        torch.save([torch.zeros(1)], pth)
    else:
        pth.write_bytes(content)
    with pytest.raises(ArtifactError, match=match) as err:
        vgg19_row(tmp_path, download=False, log=lambda s: None)
    assert str(pth) in str(err.value) and VGG19_URL in str(err.value)
    assert not (tmp_path / VGG19_FILE).exists()
    assert [p.name for p in tmp_path.iterdir()] == [VGG19_PTH]  # no temp file left


def test_offline_says_which_file_to_place_where(tmp_path, no_hub_cache, monkeypatch):
    def offline(*a, **k):
        raise OSError("offline")

    monkeypatch.setattr(weights_vgg.urllib.request, "urlopen", offline)
    logged = []
    for download in (False, True):
        row = vgg19_row(tmp_path, download=download, log=logged.append)
        assert row.status == "MISSING" and not row.sha256
        assert VGG19_URL in row.how and str(tmp_path / VGG19_PTH) in row.how
    assert any("could not download VGG19" in line for line in logged)
    assert list(tmp_path.iterdir()) == []


def test_download_is_hash_checked_then_converted(tmp_path, no_hub_cache, monkeypatch):
    src = tmp_path / "served.pth"
    _random_vgg_pth(src)

    def serve(url, timeout):
        assert url == VGG19_URL
        return open(src, "rb")

    wdir = tmp_path / "w"
    wdir.mkdir()
    monkeypatch.setattr(weights_vgg.urllib.request, "urlopen", serve)
    logged = []
    row = vgg19_row(wdir, download=True, log=logged.append)  # random bytes: not dcbb9e9d...
    assert row.status == "MISSING" and any("does not match its name" in s for s in logged)
    monkeypatch.setattr(weights_vgg, "_source_hash_ok", lambda sha: True)
    row = vgg19_row(wdir, download=True, log=logged.append)
    assert row.status == "downloaded" and row.sha256 == sha256_file(wdir / VGG19_FILE)
    assert sorted(p.name for p in wdir.iterdir()) == [VGG19_FILE]  # the 548 MB .pth is not kept


def test_a_file_of_other_content_is_reported_not_replaced(tmp_path, no_hub_cache):
    out = tmp_path / VGG19_FILE
    out.write_bytes(b"someone's own file")
    row = vgg19_row(tmp_path, download=False, log=lambda s: None)
    assert row.status == "unknown" and "left as it is" in row.how
    assert out.read_bytes() == b"someone's own file"


@pytest.mark.slow  # imports jittor in a subprocess (seconds with a warm kernel cache)
def test_the_training_loss_loads_the_converted_file(tmp_path, no_hub_cache):
    _random_vgg_pth(tmp_path / VGG19_PTH)
    vgg19_row(tmp_path, download=False, log=lambda s: None)
    code = ("import sys; from pipeline.model.losses import load_vgg19; net = load_vgg19(sys.argv[1]);"
            " import numpy as np; print(float(np.abs(net.convs[0].weight.numpy()).sum()))")
    env = {**os.environ, "nvcc_path": ""}
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / VGG19_FILE)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    want = float(load_file(str(tmp_path / VGG19_FILE))["features.0.weight"].__abs__().sum())
    assert float(proc.stdout.strip().splitlines()[-1]) == pytest.approx(want, rel=1e-6)
