import numpy as np
import pytest
import torch

from evaluation.metric_aesthetic import Aesthetic, build_head, read_head_state, standin_score
from evaluation.registry import Batch, MetricContext
from pipeline.core.config import load_config
from pipeline.core.errors import ArtifactError


def _cfg(clip, head, allow=True):
    return load_config(None, [f'evaluate.clip="{clip}"', f'evaluate.aesthetic_head="{head}"',
                              f"evaluate.allow_standin={'true' if allow else 'false'}"])


def _images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(n)]


def test_real_predictor_through_the_loading_code(tiny_clip):
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    clip_dir, head_file = tiny_clip
    m = Aesthetic(_cfg(clip_dir, head_file), MetricContext(device=torch.device("cpu")))
    assert not m.stand_in
    imgs = _images()
    m.update(Batch(stems=["a", "b", "c"], generated=imgs))
    res = m.result()
    # the same computation by hand: CLIP image_embeds, L2-normalised, head, /10, clipped
    proc = CLIPImageProcessor.from_pretrained(clip_dir)
    clip = CLIPVisionModelWithProjection.from_pretrained(clip_dir).eval()
    head = build_head(read_head_state(head_file))
    with torch.no_grad():
        e = clip(pixel_values=proc(images=imgs, return_tensors="pt")["pixel_values"]).image_embeds
        raw = head(e / e.norm(dim=-1, keepdim=True))[:, 0].double().numpy()
    want = np.clip(raw / 10, 0, 1)
    assert np.allclose([res.per_image[s] for s in "abc"], want, atol=1e-6)
    info = m.describe()
    assert info["stand_in"] is False and "head:" in info["model_sha256"]
    assert info["preprocessing"]["crop_size"] == {"height": 32, "width": 32}


def test_pth_head_loads_only_through_weights_only(tiny_clip, tmp_path):
    clip_dir, head_file = tiny_clip
    a = read_head_state(head_file)
    b = read_head_state(head_file.with_suffix(".pth"))
    assert all(torch.equal(a[k], b[k]) for k in a)

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    bad = tmp_path / "evil.pth"
    torch.save({"layers.0.weight": Evil()}, bad)
    with pytest.raises(ArtifactError, match="not a plain tensor state dict"):
        read_head_state(bad)
    broken = dict(a)
    broken.pop("layers.7.bias")
    with pytest.raises(ArtifactError, match="missing"):
        build_head(broken)


def test_batch_size_independence(tiny_clip):
    clip_dir, head_file = tiny_clip
    imgs = _images(4, seed=2)
    m1 = Aesthetic(_cfg(clip_dir, head_file), MetricContext(device=torch.device("cpu")))
    m2 = Aesthetic(_cfg(clip_dir, head_file), MetricContext(device=torch.device("cpu")))
    m1.update(Batch(stems=list("wxyz"), generated=imgs))
    for s, im in zip("wxyz", imgs):
        m2.update(Batch(stems=[s], generated=[im]))
    r1, r2 = m1.result().per_image, m2.result().per_image
    assert all(abs(r1[s] - r2[s]) < 1e-6 for s in "wxyz")


def test_standin_is_labelled_deterministic_and_not_constant(tmp_path):
    m = Aesthetic(_cfg(tmp_path / "no-clip", tmp_path / "no-head.safetensors"),
                  MetricContext(device=torch.device("cpu")))
    assert m.stand_in
    info = m.describe()
    assert info["stand_in"] is True and "STAND-IN" in info["note"] and "landscape weights" in info["note"]
    grey = np.full((48, 64, 3), 128, np.uint8)
    rng = np.random.default_rng(0)
    vivid = np.zeros((48, 64, 3), np.uint8)
    vivid[:, :32] = (230, 40, 30)
    vivid[:, 32:] = (20, 60, 220)
    vivid = np.clip(vivid + rng.normal(0, 20, vivid.shape), 0, 255).astype(np.uint8)
    m.update(Batch(stems=["grey", "vivid"], generated=[grey, vivid]))
    res = m.result().per_image
    assert 0.0 <= res["grey"] < 0.05 < res["vivid"] <= 1.0
    assert standin_score(vivid) == res["vivid"]  # deterministic


def test_standin_can_be_refused(tmp_path):
    with pytest.raises(ArtifactError, match="allow_standin"):
        Aesthetic(_cfg(tmp_path / "no-clip", tmp_path / "h.safetensors", allow=False),
                  MetricContext(device=torch.device("cpu")))
