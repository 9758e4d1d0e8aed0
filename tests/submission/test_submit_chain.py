"""`make submit` end to end on a tiny run, and again after a generate killed half-way."""

import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
TINY_TOML = f"""extends = "{ROOT / 'configs' / 'demo.toml'}"
device = "cpu"
[data]
height = 32
width = 48
val_count = 2
[model]
num_up = 3
ngf = 8
max_mult = 4
spade_hidden = 8
z_dim = 8
nef = 4
encoder_size = 16
ndf = 8
d_layers = 2
edge_nc = 4
[train]
batch_size = 2
max_steps = 3
log_every = 1
sample_every = 3
checkpoint_every = 3
[generate]
batch_size = 2
"""


def landscape(*args):
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "landscape"), *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def make_submit(tmp_path, config):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        ["make", "--no-print-directory", "submit", f"A={tmp_path / 'a'}", f"DATA={tmp_path / 'raw'}",
         "DATA_ID=tiny", "EXP=tiny", f"CONFIG={config}"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def check_zip(zip_path: Path, stems: set[str]):
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert sorted(names) == sorted(f"{s}.jpg" for s in stems)  # flat, one per map, nothing else
        for name in names:
            with zf.open(name) as fh:
                im = Image.open(fh)
                im.load()
                assert im.mode == "RGB" and im.size == (512, 384)


@pytest.mark.slow  # runs `make submit` twice (preprocess, train, generate, package)
@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "landscape").exists(), reason="needs make setup")
def test_killed_generate_then_make_submit_gives_a_complete_zip(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML)
    landscape("sample-data", "--out", str(tmp_path / "raw"), "--train", "10", "--test", "3",
              "--seed", "0", "--width", "48", "--height", "32", "--quiet")
    stems = {p.stem for p in (tmp_path / "raw" / "test" / "labels").glob("*.png")}
    make_submit(tmp_path, config)
    gen = tmp_path / "a" / "generated" / "tiny" / "test"
    zip_path = tmp_path / "a" / "submission" / "tiny.zip"
    check_zip(zip_path, stems)
    first = {p.name: p.read_bytes() for p in gen.glob("*.jpg")}

    # The state a `kill -9` leaves mid-generation: no manifest, a map not yet written, a temp file.
    (gen / "manifest.json").unlink()
    victim = sorted(gen.glob("*.jpg"))[1]
    victim.unlink()
    (gen / f".{victim.name}.k1ll3d.tmp").write_bytes(b"\xff\xd8 half a jpeg")
    zip_path.unlink()

    make_submit(tmp_path, config)
    check_zip(zip_path, stems)
    # the resumed generation is the same model on the same inputs: the same pixels
    again = np.asarray(Image.open(gen / victim.name), dtype=np.int16)
    before = np.asarray(Image.open(__import__("io").BytesIO(first[victim.name])), dtype=np.int16)
    assert np.abs(again - before).max() <= 2
