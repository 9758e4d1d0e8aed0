import pytest

from evaluation.score import a_board_score, fid_to_term, score_parts


def test_a_board_formula_on_hand_worked_values():
    # 0.8 * (0.5*0.2 + (0.6*0.5+0.5)*0.3 + (100-40)/100*0.5) = 0.8 * (0.1 + 0.24 + 0.3) = 0.512
    assert a_board_score(0.8, 0.5, 0.6, 40.0) == pytest.approx(0.512, abs=1e-12)
    # the 2nd challenge's GauGAN row (no style term then): only checks the mechanics here
    assert a_board_score(1.0, 1.0, 1.0, 0.0) == pytest.approx(1.0)
    assert a_board_score(0.0, 1.0, 1.0, 0.0) == 0.0


def test_fid_is_capped_at_100():
    # FID 250 counts as 100: the FID part is 0 -> 0.9 * (0.7*0.2 + (0*0.5+0.5)*0.3) = 0.9*0.29
    assert a_board_score(0.9, 0.7, 0.0, 250.0) == pytest.approx(0.9 * 0.29)
    assert a_board_score(0.9, 0.7, 0.0, 250.0) == a_board_score(0.9, 0.7, 0.0, 100.0)
    assert fid_to_term(100.0) == 0.0 and fid_to_term(0.0) == 1.0 and fid_to_term(25.0) == 0.75
    assert fid_to_term(60.0, fid_cap=50.0) == 0.0  # a configured cap is honoured
    with pytest.raises(ValueError):
        fid_to_term(-1.0)


def test_negative_style_correlation_and_parts():
    # style -1 maps to 0: 1.0 * (0 + 0 + 0.5 * 0.5) = 0.25
    assert a_board_score(1.0, 0.0, -1.0, 50.0) == pytest.approx(0.25)
    parts = score_parts({"mask_accuracy": 0.5, "aesthetic": 0.5, "style": 0.0, "fid": 20.0})
    assert parts["aesthetic_part"] == pytest.approx(0.1)
    assert parts["style_part"] == pytest.approx(0.15)
    assert parts["fid_part"] == pytest.approx(0.4)
    assert parts["score"] == pytest.approx(0.5 * 0.65)
    assert score_parts({"mask_accuracy": 0.5}) is None
