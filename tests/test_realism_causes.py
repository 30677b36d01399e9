"""benchmarks/realism_causes.py: the pieces of the ``completeness`` diagnostic."""

import numpy as np
import pytest
from astropy.table import Table

from astro_clustermass.simulate import SimConfig


def test_selected_halos_counts_only_matched_detections(benchmark_script):
    rc = benchmark_script("realism_causes")
    truth = Table({"HALO_ID": [1, 2, 3, 4]})
    # halo 1 extended, halo 2 point-like, halo 3 only an unmatched (fragment) extended detection
    det = Table({"HALO_ID": [1, 2, 3, 0], "EXT_LIKE": [10.0, 1.0, 10.0, 10.0],
                 "DET_LIKE": [30.0, 20.0, 30.0, 30.0], "MATCHED": [True, True, False, False]})
    sel, found = rc._selected_halos(truth, det)
    assert sel.tolist() == [True, False, False, False]
    assert found.tolist() == [True, True, False, False]
    sel3, _ = rc._selected_halos(truth, Table(det, copy=True), ext_like_min=0.5)
    assert sel3.tolist() == [True, True, False, False]


def test_kcorrection_is_one_at_z0_and_follows_the_spectral_slope(benchmark_script):
    rc = benchmark_script("realism_causes")
    k = rc.kcorrection([1.0, 1.0, 5.0], [0.0, 0.15, 0.15], SimConfig())
    assert np.isclose(k[0], 1.0)
    # the observed band is the rest band (0.5-2)(1+z), (1+z) times wider: K = 1+z for a flat
    # E dN/dE; a 1 keV spectrum falls above 1 keV (K < 1), a 5 keV one is nearly flat
    assert 0.8 < k[1] < 1.0 < k[2] < 1.15


def test_fifty_percent_recovers_a_known_logistic(benchmark_script):
    rc = benchmark_script("realism_causes")
    rng = np.random.default_rng(3)
    x = rng.uniform(-15.0, -12.0, 20000)
    flag = rng.random(x.size) < 1 / (1 + np.exp(-(x + 13.2) / 0.15))
    x50, w = rc.fifty_percent(x, flag)
    assert abs(x50 + 13.2) < 0.02 and abs(w - 0.15) < 0.02


def test_completeness_rows_bins_and_counts(benchmark_script):
    rc = benchmark_script("realism_causes")
    x = np.array([0.5, 1.5, 1.6, 2.5, 9.0])
    a = np.array([True, True, False, False, True])
    rows = rc.completeness_rows(x, np.array([0.0, 1.0, 2.0, 3.0]), (a, ~a))
    assert [(n, k) for _, _, n, k in rows] == [(1, [1, 0]), (2, [1, 1]), (1, [0, 1])]


def test_reweighted_selection_unchanged_counts_give_the_selected_number(benchmark_script):
    rc = benchmark_script("realism_causes")
    rng = np.random.default_rng(5)
    z = rng.uniform(0.0, 1.0, 4000)
    counts = 10 ** rng.uniform(0.5, 3.5, z.size)
    sel = rng.random(z.size) < counts / (counts + 100.0)
    zb = np.array([0.0, 0.2, 0.5, 1.0])
    before, same = rc.reweighted_selection(sel, z, counts, counts, zb)
    assert np.allclose(before, same) and before.sum() == sel.sum()
    # ten times fewer counts: fewer selected in every redshift bin
    _, fewer = rc.reweighted_selection(sel, z, counts, counts / 10, zb)
    assert np.all(fewer < 0.8 * before)


def test_band_energy_ratio_of_the_thermal_spectrum(benchmark_script):
    rc = benchmark_script("realism_causes")
    c = SimConfig()
    r = [rc.band_energy(t, 0.5, 2.0, c) / rc.band_energy(t, 0.1, 2.4, c) for t in (0.7, 3.0)]
    # 0.5-2 keV is inside 0.1-2.4 keV; a hotter (flatter) spectrum puts more of it there
    assert 0.3 < r[0] < r[1] < 0.75


def test_zcut_tables_find_the_redshifts_that_fail(benchmark_script):
    from astro_clustermass.simulate import realism

    rc = benchmark_script("realism_causes")
    real = realism.read_efeds_clusters()

    def dressed(ext_scale_below=None):
        """The real catalogue as a simulated detection table (secure -> 'cluster')."""
        t = Table()
        for c in ("ML_RATE", "EXT", "EXT_LIKE", "DET_LIKE", "ML_BKG", "ML_EXP", "ML_CTS", "z"):
            t[c] = np.asarray(real[c], float)
        secure = ~np.asarray(real["NOT_CLUSTER"], bool)
        t["MATCHED"] = secure
        t["MATCH_TYPE"] = np.where(secure, "cluster", "agn")
        if ext_scale_below is not None:
            z_lim, scale = ext_scale_below
            t["EXT"][secure & (t["z"] < z_lim)] *= scale
        return t

    bins, cuts = rc.zcut_tables([(dressed(), 140.0, "real")], real)
    assert all(b["n_real"] == round(b["n_sim"]) for b in bins)
    assert all(b["ext_sim"] == b["ext_real"] for b in bins)
    assert all(all(ok for _, ok in checks.values()) for _, _, checks in cuts)
    # nearby clusters three times as extended: their bins and the pooled EXT fail, and
    # removing the clusters below z = 0.2 from both catalogues makes EXT pass again
    bins, cuts = rc.zcut_tables([(dressed((0.2, 3.0)), 140.0, "wide")], real)
    assert [round(b["ext_sim"] / b["ext_real"], 3) for b in bins[:4]] == [3.0, 3.0, 3.0, 1.0]
    by_cut = {cut: checks for cut, _, checks in cuts}
    assert not by_cut[0.0]["EXT"][1] and by_cut[0.2]["EXT"][1]
    assert by_cut[0.2]["density"][0] == 1.0


def test_profile_table_reads_the_real_profiles(benchmark_script):
    import os

    rc = benchmark_script("realism_causes")
    here = os.path.join(os.path.dirname(__file__), "data", "efeds")
    rows = rc.profile_table(here)
    assert [r["z"] for r in rows] == [(0.0, 0.15), (0.15, 0.3), (0.3, 0.5), (0.5, 1.3)]
    assert sum(r["n"] for r in rows) > 400    # secure clusters with both luminosities
    for r in rows:
        model = list(r["ratio_model"].values())
        # a larger core puts more of the light between 300 and 500 kpc
        assert all(b > a > 1.0 for a, b in zip(model, model[1:]))
        # the implied core radius gives back the real ratio on the model's grid
        back = np.interp(r["rc_implied"], list(r["ratio_model"]), model)
        assert back == pytest.approx(r["ratio_real"], rel=1e-9)
        assert 0.0 < r["ext_theta_real"] < 1.0 and np.isnan(r["ext_theta_sim"])


def test_extent_mix_fits_synthetic_cores(benchmark_script):
    rc = benchmark_script("realism_causes")
    out = rc.extent_mix(n_patch=2)
    assert list(out) == ["beta = 2/3, round", "beta spread", "axis ratios", "both"]
    for ratio, found in out.values():
        assert found >= 1 and 0.5 < ratio < 1.5     # the fit finds a core of about 50"
