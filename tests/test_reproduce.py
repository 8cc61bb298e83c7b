"""The main job on the synthetic Danish cohort: posteriors against the published HRs (one shared run)."""

import json
import math

import pandas as pd
import pytest

import bayescrt as bc
from bayescrt import reproduce as rp
from bayescrt.spec import load_spec
from seeds import seed

pytestmark = pytest.mark.mcmc


@pytest.fixture(scope="module")
def danish():
    # the spec's own settings (4 chains x 1000 draws) and seed, shifted with every test seed
    spec_seed = load_spec("danish").sampler["random_seed"]
    return rp.reproduce("danish", random_seed=seed(spec_seed), progress=False)


def test_posteriors_reproduce_the_published_hrs(danish):
    tab = danish.table()
    print("\n" + str(danish))
    assert list(tab.index) == ["minimal", "full"]
    for name, r in tab.iterrows():
        assert r.published_lower < r.hr_median < r.published_upper, name
        width = math.log(r.hr_upper / r.hr_lower)
        pub_width = math.log(r.published_upper / r.published_lower)
        print(f"{name}: log-scale interval width {width:.4f} vs published {pub_width:.4f} ({width / pub_width - 1:+.1%})")
        assert abs(width / pub_width - 1) < 0.2, name


def test_diagnostics_pass_for_both_fits(danish):
    for name, fit in danish.fits.fits.items():
        g = fit.diagnostics().gates["value"]
        assert g["R-hat (max)"] < 1.01 and g["bulk ESS (min)"] > 400 and g["divergences"] == 0, (name, g)
        assert fit.diagnostics().ok


def test_the_truth_is_inside_the_full_model_posterior(danish):
    truth = danish.cohort.attrs["truth"]["exposure_hr"]
    r = danish.table().loc["full"]
    assert r.hr_lower < truth < r.hr_upper


def test_cli_writes_every_output_and_says_synthetic(danish, tmp_path, monkeypatch, capsys):
    from bayescrt.cli import main

    monkeypatch.setattr(rp, "reproduce", lambda *a, **k: danish)
    rc = main(["reproduce", "danish", "--out", str(tmp_path / "out"), "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "SYNTHETIC DATA" in out and "published 95% CI" in out and "P(HR > 1)" in out
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"danish_minimal.nc", "danish_full.nc", "table.csv", "forest.png", "diagnostics.txt",
            "diagnostics.json", "README.txt", "table1.csv", "table1.txt"} <= files
    assert "SYNTHETIC" in (tmp_path / "out" / "README.txt").read_text()
    table1 = (tmp_path / "out" / "table1.txt").read_text()
    assert "SYNTHETIC" in table1 and "age, median [Q1, Q3]" in table1 and "SMD (de novo, upgrade)" in table1
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["synthetic"] is True
    assert [r["covariate_set"] for r in doc["rows"]] == ["minimal", "full"]
    assert set(doc["rows"][0]) == {"covariate_set", "hr_median", "hr_lower", "hr_upper", "p_hr_gt_1", "published_hr",
                                   "published_lower", "published_upper", "diagnostics_ok"}
    back = bc.load(tmp_path / "out" / "danish_full.nc")
    assert back.idata.attrs["synthetic"] == 1
    csv = pd.read_csv(tmp_path / "out" / "table.csv", index_col=0)
    assert csv.loc["full", "published_hr"] == 1.03


def test_each_covariate_set_is_compared_with_the_published_hr_of_its_adjustment(danish):
    """Matched by the size of the adjustment set (2 and 8 covariates); the synthetic cohort is calibrated to the
    published HRs, so each posterior is consistent with its own published estimate and less so with the other."""
    tab = danish.fits.compare_published("danish-registry-2000-2018")
    print("\n" + tab.drop(columns="interpretation").to_string())
    assert tab.loc["minimal", "published_result"] == "mortality-age-sex"
    assert tab.loc["full", "published_result"] == "mortality-full"
    assert (tab["standardised_difference"].abs() < 1).all() and (tab["overlap"] > 0.6).all()
    crossed = danish.fits.compare_published("danish-registry-2000-2018",
                                            results={"minimal": "mortality-full", "full": "mortality-age-sex"})
    assert (crossed["overlap"] < tab["overlap"]).all()
    with pytest.raises(bc.SpecError, match="not covariate sets"):
        danish.fits.compare_published("danish-registry-2000-2018", results={"minimall": "mortality-full"})


def test_the_danish_report_says_synthetic_in_its_title_and_beside_every_table(danish, tmp_path, monkeypatch, capsys):
    from bayescrt.cli import main
    from test_analyse import _page

    monkeypatch.setattr(rp, "reproduce", lambda *a, **k: danish)
    rc = main(["reproduce", "danish", "--report", str(tmp_path / "danish.html")])
    assert rc == 0 and "wrote the report" in capsys.readouterr().out
    page = _page(tmp_path / "danish.html")
    assert page.title.startswith("SYNTHETIC DATA:")
    assert len(page.tables) >= 8 and all("SYNTHETIC" in label for label in page.tables), page.tables
    text = " ".join(page.text)
    assert "published HR (95% CI)" in text and "1.13 (1.05 to 1.21)" in text  # beside the published estimates
    assert "The cohort has no missing values." in text
