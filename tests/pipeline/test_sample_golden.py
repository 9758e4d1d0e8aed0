"""Golden bytes of the sample dataset: recorded from the single-module generator (commit 22158e1)
before it was split into a package, so the split provably changed no output.

The hashes pin this environment (OpenCV's JPEG encoder and its float ops); a library upgrade that
changes them is a reason to re-record, not to loosen the test.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from pipeline.data.sample import (SCENES, STYLES, make_scene, render_photo, sample_pair,
                                  write_sample_dataset)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


GOLDEN_FILES = {  # write_sample_dataset(tmp, 6, 2, seed=0, width=128, height=96)
    "test/label_to_img.json": "00326bd5a610e25f4762e57f9c53ea0e5672cb8e3de1d1e8fa7731c7b17d7522",
    "test/labels/test_00000.png": "2ad43eae04531084074ee790cd10f2f5b441b8474ec69f90157114c401eb821e",
    "test/labels/test_00001.png": "e51c8c4c459505d704236a89cdc64b885aa105b1af7ffb955e79323fbabe3301",
    "train/imgs/train_00000.jpg": "5403c2c858b55d3f447bc61aeb3f73ec8bf6e27b1c33ce6452dab89f920c7524",
    "train/imgs/train_00001.jpg": "6c1df10bfc66b2e3fd639d90f8b81bd98e31e0d6ed63c502182d61d33f8bb494",
    "train/imgs/train_00002.jpg": "6b9df1e29ad0b2ca39294f6f2bb443a120e18e265eb3331300ad961fa9e61f50",
    "train/imgs/train_00003.jpg": "eacc53600c9015f3dcfabbdca3827c7d9b1d1768446eea737a650225d6c62f03",
    "train/imgs/train_00004.jpg": "3e1c25d884951a1bd5d6ba494c9cd41611f426b51b4eb57e26580e9e28907141",
    "train/imgs/train_00005.jpg": "faeec12b148841f94769bfa2be23e804f8de7440eae97bdc5ce455fdcbd75b7e",
    "train/labels/train_00000.png": "6d9e4f55983a83a0b5ddee8cef4759f1ad2f99c74efaa0941803195eddae9c51",
    "train/labels/train_00001.png": "0edc04684850ef7b1ee037ca58c2f7045e05c43b648999283f4d099a43477728",
    "train/labels/train_00002.png": "c2054c9a89a5fb4c0805a0d27fa3d897235707d15ebeba553f58e1ead0f17168",
    "train/labels/train_00003.png": "2e7c3efcfe209a0928f6978cbbf944a2ae56bd655eed0b0e1fd9588a7458ba34",
    "train/labels/train_00004.png": "bc332be5c06e075e0da9276fd1db440daf58e085184a612ccd29c97821b593f4",
    "train/labels/train_00005.png": "572e27d872173ee4b51d0e9704415f91930eb847b9b109c43a3b2a5bc53fa536",
}
GOLDEN_EXTRA = {  # the same dataset's manifest "extra", less the timing
    "classes": {"earth": 4, "field": 2, "grass": 7, "hill": 2, "house": 2, "mountain": 5, "path": 3,
                "river": 1, "road": 1, "rock": 6, "sand": 2, "sea": 2, "sky": 8, "tree": 6},
    "height": 96, "width": 128, "seed": 0, "train": 6, "test": 2,
    "scenes": {"test_00000": "alpine", "test_00001": "alpine", "train_00000": "countryside",
               "train_00001": "valley", "train_00002": "countryside", "train_00003": "coast",
               "train_00004": "coast", "train_00005": "alpine"},
    "styles": {"train_00000": "autumn", "train_00001": "golden-hour", "train_00002": "misty",
               "train_00003": "autumn", "train_00004": "dawn", "train_00005": "dawn"},
}
GOLDEN_SCENES = {  # make_scene(default_rng([5, 0]), 96, 128, kind): label + part bytes + repr(info)
    "coast": "a5b72ebee74c8542aa4133f1b36a3e8bbdb9edfbe955f73a671c4431a4752cf3",
    "lake": "1bfd0c773addfac43bc1123193f36e9687119209b5119394b09e7c928a3d00ca",
    "countryside": "664050a8199dfbeaec1b4de7f767dd2b874a1b5b0f2f1d3e924d911c91e25c46",
    "valley": "bd28996294d6a3874f209c4d335abb8d60239e8d444c5c0997fcdd40d5844e41",
    "alpine": "9fe427c6b5105dfc5efb2cf465cfa515c2dd44c5688b8b0c00d6cc5f873fc317",
}
GOLDEN_STYLES = {  # render_photo of one countryside layout, default_rng(0), in each style
    "dawn": "d82bfb8cbbfeaef94f9553ec2ac74d0505975ef79780d27edcaa0922b1c80ca6",
    "noon": "cd3301fdfa565217d180d16158350f28a772afa1974e3cc5ddc930d4ce17d3e4",
    "golden-hour": "3f76800ed5aba10886648d99c50519be4e23653c877278cb227b829c398aebb2",
    "dusk": "c9f1dcf1c308e6508de50f3f731c8078d775be7ad54b9a4b829c45b437af16d2",
    "overcast": "d12a38c8f673ef1a455af6071249854a7b8061d20f05b3186fcd5f91baef4f25",
    "autumn": "9316591005c42938b292081c77b4c0d8c0662790cbe80f62297584427b11f518",
    "misty": "8fe101e6e3a732b92bc923e434e6d0683365191fdad357e8a035781456d49e48",
}
GOLDEN_FULL_SIZE = "e4b9c019466d8e2496b2ee91df51ea5396bc3ff6a358e7c0bf74104ec45c979d"  # sample_pair(0, 0)


def test_dataset_files_and_manifest_are_the_recorded_bytes(tmp_path):
    out = tmp_path / "ds"
    man = write_sample_dataset(out, 6, 2, seed=0, width=128, height=96, progress=False)
    got = {p.relative_to(out).as_posix(): sha(p.read_bytes())
           for p in sorted(out.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    # the one file added since: each training photo's style, as the manifest records it
    styles = json.loads((out / "train/styles.json").read_text())
    assert styles == {f"{stem}.jpg": name for stem, name in GOLDEN_EXTRA["styles"].items()}
    assert {k: v for k, v in got.items() if k != "train/styles.json"} == GOLDEN_FILES
    assert {k: v for k, v in man["extra"].items() if k != "seconds"} == GOLDEN_EXTRA


def test_every_scene_kind_draws_the_recorded_layout():
    assert tuple(GOLDEN_SCENES) == SCENES
    for kind in SCENES:
        label, part, info = make_scene(np.random.default_rng([5, 0]), 96, 128, kind)
        assert sha(label.tobytes() + part.tobytes() + repr(info).encode()) == GOLDEN_SCENES[kind], kind


def test_every_style_renders_the_recorded_photo():
    assert [s.name for s in STYLES] == list(GOLDEN_STYLES)
    label, part, info = make_scene(np.random.default_rng(2), 96, 128, "countryside")
    for style in STYLES:
        photo = render_photo(label, part, info["horizon"], style, np.random.default_rng(0))
        assert sha(photo.tobytes()) == GOLDEN_STYLES[style.name], style.name


def test_full_size_pair_is_the_recorded_one():
    label, photo, info = sample_pair(0, 0)
    assert sha(label.tobytes() + photo.tobytes()) == GOLDEN_FULL_SIZE
    assert info["scene"] == "countryside" and info["style"] == "autumn"
