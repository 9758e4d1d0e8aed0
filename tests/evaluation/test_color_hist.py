import numpy as np
import pytest

from evaluation.metric_color_hist import VARIANTS, image_to_histogram, parse_variant, style_correlation
from pipeline.core.errors import ConfigError


def _images():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) // 2 + rng.integers(0, 60, a.shape), 0, 255).astype(np.uint8)
    return a, b


@pytest.mark.parametrize("variant", VARIANTS)
def test_correlation_equals_corrcoef_of_flattened_histograms(variant):
    a, b = _images()
    ha, hb = image_to_histogram(a, variant), image_to_histogram(b, variant)
    assert ha.ndim == 1 and ha.sum() == a.shape[0] * a.shape[1]
    assert style_correlation(a, b, variant) == pytest.approx(np.corrcoef(ha, hb)[0, 1], abs=1e-6)
    assert style_correlation(a, a, variant) == pytest.approx(1.0, abs=1e-9)


def test_joint_rgb_histogram_bins_and_combined_variants():
    img = np.zeros((2, 2, 3), np.uint8)
    img[0, 0] = (255, 0, 0)
    h = image_to_histogram(img, "rgb-16")
    assert h.shape == (16**3,) and h[15 * 256] == 1 and h[0] == 3  # (r=15, g=0, b=0) and black
    a, b = _images()
    both = style_correlation(a, b, "rgb-16+hsv-72")
    assert both == pytest.approx((style_correlation(a, b, "rgb-16") + style_correlation(a, b, "hsv-72")) / 2)
    assert parse_variant("rgb-8+hsv-hue-180") == ["rgb-8", "hsv-hue-180"]
    with pytest.raises(ConfigError, match="unknown variant"):
        parse_variant("lab-64")


def test_different_colours_correlate_less():
    a, _ = _images()
    red = np.zeros_like(a); red[..., 0] = 200
    blue = np.zeros_like(a); blue[..., 2] = 200
    assert style_correlation(red, blue, "rgb-16") < 0.1 < style_correlation(a, a[::-1], "rgb-16")
