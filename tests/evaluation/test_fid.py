from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from evaluation.feature_extractor_inception import images_to_features, load_inception
from evaluation.inputs import list_images
from evaluation.metric_fid import (
    features_to_fid,
    features_to_statistics,
    folder_statistics,
    statistics_cache_path,
    statistics_to_fid,
)
from pipeline.core.errors import ArtifactError
from pipeline.core.imageio import load_photo

from .conftest import write_scene_folder


def _sqrtm_fid(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.real(covmean)))


def test_frechet_distance_equals_scipy_sqrtm_reference():
    rng = np.random.default_rng(0)
    f1 = rng.normal(size=(200, 16))
    f2 = rng.normal(0.3, 1.5, size=(150, 16)) @ rng.normal(size=(16, 16)) * 0.3
    mu1, s1 = features_to_statistics(f1)
    mu2, s2 = features_to_statistics(f2)
    assert np.allclose(mu1, f1.mean(0)) and np.allclose(s1, np.cov(f1, rowvar=False))
    ours = statistics_to_fid(mu1, s1, mu2, s2)
    assert ours == pytest.approx(_sqrtm_fid(mu1, s1, mu2, s2), rel=1e-6)
    assert statistics_to_fid(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)
    # the low-rank route (N <= D) and the full route (N > D) give the same distance
    few = f2[:6]
    mu3, s3 = features_to_statistics(few)
    assert features_to_fid(few, mu1, s1) == pytest.approx(_sqrtm_fid(mu3, s3, mu1, s1), rel=1e-6)
    assert features_to_fid(f2, mu1, s1) == pytest.approx(ours, rel=1e-9)
    with pytest.raises(ValueError):
        features_to_statistics(f1[:1])
    with pytest.raises(ValueError):
        statistics_to_fid(mu1, s1, mu2[:3], s2[:3, :3])


@pytest.mark.slow
def test_fid_equals_torch_fidelity_and_cache_is_reused(tmp_path, fid_weights):
    import torch_fidelity

    a, b = tmp_path / "a", tmp_path / "b"
    write_scene_folder(a, 4, seed=1)
    write_scene_folder(b, 4, seed=2)
    ref = torch_fidelity.calculate_metrics(
        input1=str(a), input2=str(b), fid=True, cuda=False, verbose=False, cache=False,
        feature_extractor_weights_path=str(fid_weights), save_cpu_ram=True,
    )["frechet_inception_distance"]
    model = load_inception(fid_weights, "cpu")
    kw = dict(weights_sha256="w", cache_dir=tmp_path / "cache", batch_size=64, device="cpu", progress=False)
    mu_a, s_a, info_a = folder_statistics(model, a, **kw)
    mu_b, s_b, _ = folder_statistics(model, b, **kw)
    # what the metric does: generated features against the cached training statistics
    feats_a = images_to_features(model, [load_photo(p) for p in list_images(a)], "cpu")
    assert features_to_fid(feats_a, mu_b, s_b) == pytest.approx(ref, abs=1e-3)
    assert not info_a["cached"]
    mu_c, s_c, info_c = folder_statistics(model, a, **kw)  # second time: from the .npz cache
    assert info_c["cached"] and info_c["cache"] == info_a["cache"]
    assert np.array_equal(mu_c, mu_a) and np.array_equal(s_c, s_a)
    # a changed photo or other weights give another key
    files = list_images(a)
    assert statistics_cache_path(files, "w", kw["cache_dir"])[0] == Path(info_a["cache"])
    assert statistics_cache_path(files, "other", kw["cache_dir"])[0] != Path(info_a["cache"])
    write_scene_folder(a, 1, seed=9)
    assert statistics_cache_path(list_images(a), "w", kw["cache_dir"])[0] != Path(info_a["cache"])


@pytest.mark.slow  # needs the converted Inception
def test_features_do_not_depend_on_batch_size(tmp_path, fid_weights):
    write_scene_folder(tmp_path, 2, seed=3)
    images = [load_photo(p) for p in list_images(tmp_path)]
    model = load_inception(fid_weights, "cpu")
    together = images_to_features(model, images, "cpu")
    one_by_one = np.concatenate([images_to_features(model, [im], "cpu") for im in images])
    assert together.shape == (2, 2048)
    assert np.allclose(together, one_by_one, atol=1e-4)


def test_missing_or_pickled_weights_are_refused(tmp_path):
    import torch

    with pytest.raises(ArtifactError, match="landscape weights"):
        load_inception(tmp_path / "none.pth", "cpu")

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    bad = tmp_path / "bad.pth"
    torch.save({"x": Evil()}, bad)
    with pytest.raises(ArtifactError, match="not a plain tensor state dict"):
        load_inception(bad, "cpu")
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ArtifactError, match="does not fit"):
        load_inception(wrong, "cpu")


# ---------------------------------------------------------------------------- KID (issue 10)
def test_kid_equals_torch_fidelity_on_the_same_features():
    import torch
    from torch_fidelity.metric_kid import kid_features_to_metric

    from evaluation.metric_kid import features_to_kid, kid_subset_size

    rng = np.random.default_rng(0)
    f1 = rng.normal(size=(30, 64)).astype(np.float32)
    f2 = (rng.normal(0.4, 1.2, size=(45, 64))).astype(np.float32)
    for size in (30, 12):
        ref = kid_features_to_metric(torch.from_numpy(f1), torch.from_numpy(f2), kid_subsets=100, kid_subset_size=size,
                                     kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                                     kid_kernel_poly_coef0=1, rng_seed=2020, verbose=False)
        ours = features_to_kid(f1, f2, subset_size=size)
        # same subsets (same RandomState draws), same float32 kernels and order of sums
        assert ours["mean"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-6, abs=1e-9)
        assert ours["std"] == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-5, abs=1e-9)
    assert kid_subset_size(30, 45) == 30 and kid_subset_size(5000, 3000) == 1000
    assert features_to_kid(f1, f2)["subset_size"] == 30  # adapted to N (torch-fidelity's 1000 would refuse)
    # unbiased: two halves of one distribution are ~0 (can be < 0), a shifted set is clearly > 0
    same = features_to_kid(f2[:22], f2[22:44])["mean"]
    assert abs(same) < 0.25 * features_to_kid(f1, f2)["mean"]
    with pytest.raises(ValueError):
        features_to_kid(f1[:1], f2)


@pytest.mark.slow
def test_kid_equals_torch_fidelity_calculate_metrics_on_folders(tmp_path, fid_weights):
    import torch_fidelity

    from evaluation.metric_fid import reference_statistics
    from evaluation.metric_kid import features_to_kid

    a, b = tmp_path / "a", tmp_path / "b"
    write_scene_folder(a, 5, seed=1)
    write_scene_folder(b, 7, seed=2)
    ref = torch_fidelity.calculate_metrics(
        input1=str(a), input2=str(b), kid=True, kid_subset_size=5, cuda=False, verbose=False, cache=False,
        feature_extractor_weights_path=str(fid_weights), save_cpu_ram=True,
    )
    model = load_inception(fid_weights, "cpu")
    # what the metric does: generated features against the reference set's cached features
    _, _, feats_b, info = reference_statistics(model, list_images(b), weights_sha256="w", cache_dir=tmp_path / "c",
                                               batch_size=64, device="cpu", progress=False)
    _, _, cached_b, again = reference_statistics(model, list_images(b), weights_sha256="w", cache_dir=tmp_path / "c",
                                                 batch_size=64, device="cpu", progress=False)
    assert not info["cached"] and again["cached"] and np.array_equal(cached_b, feats_b)
    assert info["count"] == 7 and len(info["names_sha256"]) == 64
    feats_a = images_to_features(model, [load_photo(p) for p in list_images(a)], "cpu")
    ours = features_to_kid(feats_a, feats_b)
    assert ours["subset_size"] == 5
    # Inception features agree to ~1e-5 between our batched call and torch-fidelity's; KID follows
    assert ours["mean"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-3, abs=1e-5)


# ---------------------------------------------------------------------------- the reference set
def test_reference_set_is_the_training_split_only(sample_preprocessed, tmp_path):
    from evaluation.inputs import names_identity, reference_photos, resolve_inputs
    from pipeline.core.preprocessed import PreprocessedData

    data = PreprocessedData.open(sample_preprocessed)
    train, val = data.stems("train"), data.stems("val")
    inputs = resolve_inputs(tmp_path, data_dir=sample_preprocessed, split="val")
    files, info = reference_photos(inputs, val)
    names = {p.name for p in files}
    assert {p.stem for p in files} == set(train) and not {p.stem for p in files} & set(val)
    assert info["count"] == len(train) and info["left_out"] == len(val)
    assert info["names_sha256"] == names_identity(sorted(names))["names_sha256"]
    assert "training split" in info["rule"]
    # the same folder given explicitly: every photo except those named like a scored map
    explicit = resolve_inputs(tmp_path, train_photos_dir=inputs.train_photos_dir)
    files2, info2 = reference_photos(explicit, val[:2])
    assert {p.stem for p in files2} == set(train) | set(val[2:])
    assert info2["left_out"] == 2 and info2["names_sha256"] != info["names_sha256"]
