"""The validation-score regression check: table, verdicts, exit codes, baseline update."""

import json

import pytest

from evaluation import regress

BASELINE = {
    "source": "test",
    "terms": {
        "score": {"value": 0.40, "tolerance": 0.05, "higher_is_better": True},
        "mask_accuracy": {"value": 0.80, "tolerance": 0.06, "higher_is_better": True},
        "fid": {"value": 120.0, "tolerance": 25.0, "higher_is_better": False},
    },
}


def scores(score=0.40, mask=0.80, fid=120.0):
    return {"score": score, "terms": {"mask_accuracy": {"value": mask}, "fid": {"value": fid}}}


def test_within_tolerance_passes():
    rows, failed = regress.compare(regress.scores_to_terms(scores(0.38, 0.85, 140.0)), BASELINE)
    assert not failed
    assert [r["verdict"] for r in rows] == ["ok", "ok", "ok"]


@pytest.mark.parametrize(
    "kwargs, term",
    [({"score": 0.34}, "score"), ({"mask": 0.73}, "mask_accuracy"), ({"fid": 146.0}, "fid")],
)
def test_each_term_pushed_outside_fails(kwargs, term):
    rows, failed = regress.compare(regress.scores_to_terms(scores(**kwargs)), BASELINE)
    assert failed
    assert {r["term"]: r["verdict"] for r in rows}[term] == "REGRESSED"


def test_improvement_beyond_tolerance_is_reported_not_failed():
    rows, failed = regress.compare(regress.scores_to_terms(scores(fid=80.0)), BASELINE)
    assert not failed
    assert rows[2]["verdict"].startswith("improved")


def test_missing_term_fails():
    now = {"score": 0.4, "mask_accuracy": 0.8}
    rows, failed = regress.compare(now, BASELINE)
    assert failed and rows[2]["verdict"] == "MISSING"


def test_cli_exit_codes_and_update(tmp_path, capsys):
    s, b = tmp_path / "scores.json", tmp_path / "baseline.json"
    b.write_text(json.dumps(BASELINE))
    s.write_text(json.dumps(scores(0.30)))
    assert regress.main([str(s), str(b)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSED" in out and "baseline" in out.splitlines()[0]
    # on-purpose update keeps the tolerances and makes the same scores pass
    assert regress.main([str(s), str(b), "--update"]) == 0
    new = json.loads(b.read_text())
    assert new["terms"]["score"] == {"value": 0.30, "tolerance": 0.05, "higher_is_better": True}
    assert regress.main([str(s), str(b)]) == 0


def test_cli_missing_baseline_says_how_to_make_it(tmp_path, capsys):
    s = tmp_path / "scores.json"
    s.write_text(json.dumps(scores()))
    assert regress.main([str(s), str(tmp_path / "none.json")]) == 2
    assert "make regress-update" in capsys.readouterr().err


def test_cli_closing_line_counts_terms(tmp_path, capsys):
    s, b = tmp_path / "scores.json", tmp_path / "baseline.json"
    b.write_text(json.dumps(BASELINE))
    s.write_text(json.dumps(scores(mask=0.5)))
    assert regress.main([str(s), str(b)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "regress: 2 passed, 1 failed"


def test_fingerprint_names_cpu_cores_and_versions():
    fp = regress.platform_fingerprint()
    assert fp["cores"] >= 1 and fp["cpu"] and len(fp["cpu_flags_sha256"]) == 64
    assert "numpy" in fp["packages"]
    assert fp == regress.platform_fingerprint()  # stable within a machine
    other = dict(fp, cores=fp["cores"] + 1)
    assert not regress.same_platform({"platform": other}, fp)


def test_on_the_baselines_platform_any_change_fails():
    here = regress.platform_fingerprint()
    base = dict(BASELINE, platform=here, same_platform_tolerance=2e-6)
    now = {"score": 0.40 - 1e-4, "mask_accuracy": 0.80, "fid": 120.0}
    rows, failed = regress.compare(now, base, exact=True)
    assert failed and rows[0]["verdict"] == "REGRESSED" and rows[0]["tolerance"] == 2e-6
    # the rounding of the stored values passes
    assert not regress.compare({"score": 0.40 - 1e-6, "mask_accuracy": 0.80, "fid": 120.0},
                               base, exact=True)[1]
    # elsewhere the stated tolerance applies
    assert not regress.compare(now, base, exact=False)[1]


def test_cli_uses_the_exact_check_only_on_the_recorded_platform(tmp_path, capsys):
    s, b = tmp_path / "scores.json", tmp_path / "baseline.json"
    s.write_text(json.dumps(scores(0.40)))
    assert regress.main([str(s), str(b), "--update"]) == 0
    made = json.loads(b.read_text())
    assert made["platform"]["id"] == regress.platform_fingerprint()["id"]
    capsys.readouterr()
    s.write_text(json.dumps(scores(0.40 - 1e-3)))
    assert regress.main([str(s), str(b)]) == 1
    assert "exact check" in capsys.readouterr().out
    made["platform"] = dict(made["platform"], cpu="another CPU")
    b.write_text(json.dumps(made))
    assert regress.main([str(s), str(b)]) == 0
    assert "differs from the baseline's (cpu)" in capsys.readouterr().out
    del made["platform"]
    b.write_text(json.dumps(made))
    assert regress.main([str(s), str(b)]) == 0
    assert "not recorded" in capsys.readouterr().out
