"""The realism benchmark against the real eFEDS cluster catalogue (simulate.realism)."""

import numpy as np
import pytest
from astropy.table import Table

from astro_clustermass.simulate import realism


@pytest.fixture(scope="module")
def real():
    return realism.read_efeds_clusters()


def _as_simulated(real, ext_scale=1.0):
    """The real table dressed as a simulated detection table (MATCHED = secure cluster)."""
    t = Table()
    for c in ("ML_RATE", "EXT", "EXT_LIKE", "DET_LIKE", "ML_BKG", "ML_EXP", "ML_CTS"):
        t[c] = np.asarray(real[c], float)
    t["EXT"] *= ext_scale
    t["z"] = np.asarray(real["z"], float)
    t["MATCHED"] = ~np.asarray(real["NOT_CLUSTER"], bool)
    return t


def test_real_table_is_the_published_one(real):
    # Klein et al. 2022: 542 candidates, all with EXT_LIKE > 6 & DET_LIKE > 5
    assert len(real) == 542
    assert realism.selected(real).all()
    assert np.median(real["EXT"]) == pytest.approx(26.72, abs=0.01)
    assert np.median(real["ML_RATE"]) == pytest.approx(0.0896, abs=1e-4)
    # 89 candidates with a contamination probability >= 0.2
    assert int(real["NOT_CLUSTER"].sum()) == 89
    assert realism.EFEDS_DENSITY_DEG2 == pytest.approx(3.871, abs=1e-3)


def test_identical_catalogue_passes_and_a_compact_one_fails(real):
    same = realism.compare_with_efeds([(_as_simulated(real), 140.0, "real")], real=real)
    for name, e in same["observables"].items():
        assert e["ks_d"] == 0.0, name
        assert e["median_diff"] == 0.0, name
    assert same["density"]["ratio"] == pytest.approx(1.0)
    assert same["non_cluster_fraction"]["sim"] == pytest.approx(89 / 542)
    req = realism.check_requirements(same)
    assert all(ok for _, ok in req.values())

    compact = realism.compare_with_efeds([(_as_simulated(real, 0.6), 140.0)], real=real)
    e = compact["observables"]["EXT"]
    assert e["ks_d"] > 0.2 and e["median_diff"] == pytest.approx(-0.4)
    assert not realism.check_requirements(compact)["EXT"][1]
    assert "EXT [arcsec]" in realism.format_table(compact)


def test_missing_column_is_named(real):
    t = _as_simulated(real)
    t.remove_column("MATCHED")
    with pytest.raises(ValueError, match="MATCHED"):
        realism.compare_with_efeds([(t, 10.0)], real=real)


def test_small_simulated_field(tmp_path, real):
    from astro_clustermass.simulate import simulate_field

    sky = simulate_field(str(tmp_path / "f"), area=2.0, seed=21, progress=False,
                         write_events=False)
    res = realism.compare_with_efeds([(sky.detections, 2.0, 21)], real=real)
    n_sel = int(realism.selected(sky.detections).sum())
    assert res["density"]["sim"] == pytest.approx(n_sel / 2.0)
    assert n_sel > 0
    # a 2 deg^2 field is too small to pass or fail the benchmark, but every observable
    # is compared, from the same selected detections
    for name, e in res["observables"].items():
        assert e["n_real"] > 400
        assert 0.0 <= e["ks_d"] <= 1.0 or e["n_sim"] == 0, name
    assert res["observables"]["ML_RATE"]["n_sim"] == n_sel
    # read back from disk as the benchmarks read it; another mode is refused by name
    [(det, area, seed)] = realism.read_fields([str(tmp_path / "f")])
    assert (len(det), area, seed) == (len(sky.detections), 2.0, 21)
    manifest = tmp_path / "f" / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("mode: field", "mode: stamps"))
    with pytest.raises(ValueError, match="f is not a field-mode realisation"):
        realism.read_fields([str(tmp_path / "f")])


def test_efeds_exposure_has_the_real_spread(real):
    from astro_clustermass.simulate import instrument, survey
    from astro_clustermass.simulate.config import DEFAULT_CONFIG

    vign = survey.band_vignetting(DEFAULT_CONFIG)
    emap = instrument.ExposureMap(*survey.field_box(140.0), DEFAULT_CONFIG,
                                  np.random.default_rng(1), vignetting=vign)
    with pytest.raises(ValueError, match="vignetting"):
        instrument.ExposureMap(*survey.field_box(4.0), DEFAULT_CONFIG, np.random.default_rng(1))
    vignetted = emap.map.ravel() * vign
    ml_exp = np.asarray(real["ML_EXP"], float)
    # the plateau is the real one; the area distribution is the candidates' one
    # re-weighted by 1 / ML_EXP, so its upper tail is a little lighter
    assert np.median(vignetted) == pytest.approx(np.median(ml_exp), rel=0.02)
    assert 1500 < np.percentile(vignetted, 95) <= np.percentile(ml_exp, 95)
    with pytest.raises(ValueError, match="exposure_model"):
        instrument.ExposureMap(*survey.field_box(4.0), DEFAULT_CONFIG.replace(exposure_model="x"),
                               np.random.default_rng(1))
