"""benchmarks/validate_simulate.py: the like-for-like comparison of field and stamps."""


import numpy as np
from astropy.table import Table

from astro_clustermass.simulate import SimConfig, simulate_stamps


def test_field_like_stamps_inner_box_and_preselection(benchmark_script):
    vs = benchmark_script("validate_simulate")
    cfg = SimConfig()
    # halos: inside the inner box (0.5 deg margin), near the edge, too faint, too light
    ra = np.array([1.0, 1.2, 0.2, 1.0, 1.0])
    dec = np.array([0.0, 0.3, 0.0, 0.0, -0.1])
    lm = np.array([14.0, 13.5, 14.0, 14.0, 13.2])
    counts = np.array([40.0, 30.0, 40.0, 5.0, 40.0])
    truth = Table({"HALO_ID": np.arange(1, 6), "RA": ra, "DEC": dec, "M500c": 10 ** lm,
                   "EXPOSURE": np.full(5, cfg.exposure_mean), "counts_exp": counts,
                   "realisation": ["f"] * 5})
    # detections: halo 1 selected, halo 2 detected but not extended, halo 3 selected (edge)
    det = Table({"HALO_ID": [1, 2, 3], "EXT_LIKE": [10.0, 1.0, 10.0],
                 "DET_LIKE": [30.0, 20.0, 30.0], "MATCHED": [True, True, True],
                 "realisation": ["f"] * 3})
    out = vs.field_like_stamps(det, truth, {"f": ((0.0, 2.0), (-1.0, 1.0))}, cfg, 13.3)
    # inner box RA 0.5-1.5, Dec -0.5-0.5: 1 x 180/pi x 2 sin(0.5 deg) deg^2
    assert np.isclose(out["inner_area_deg2"], np.degrees(2 * np.sin(np.radians(0.5))))
    assert out["halos"] == 2 and out["selected_matched"] == 1
    assert np.isclose(out["per140"][0], 140.0 / out["inner_area_deg2"])
    assert out["efficiency_by_log10M"]["13.9-14.2"] == [1.0, 1, 1]
    assert out["efficiency_by_log10M"]["13.3-13.6"] == [0.0, 0, 1]
    # a field too small for the margin has no inner area
    small = vs.field_like_stamps(det, truth, {"f": ((0.0, 0.8), (-1.0, 1.0))}, cfg, 13.3)
    assert small["halos"] == 0 and np.isnan(small["per140"][0])


def test_measure_stamps_area_from_stamps_run(tmp_path, benchmark_script):
    # a run given by area (no n_halos_requested): the virtual area per stamp is the run's
    # area over its stamps, and the efficiencies count the selected central clusters
    vs = benchmark_script("validate_simulate")
    r = simulate_stamps(str(tmp_path), area=0.2, seed=5, config=SimConfig(chunk_size=4),
                        progress=False, keep_events="none", max_chunks=1)
    man = r.manifest
    out = vs.measure_stamps(str(tmp_path))
    assert out["stamps"] == 4
    assert np.isclose(out["virtual_area_deg2"], man["area_deg2"] * 4 / man["n_stamps"])
    eff = out["efficiency_by_log10M"]
    assert sum(v[1] for v in eff.values()) == out["selected_central"]
    assert sum(v[2] for v in eff.values()) <= 4


def test_agn_photon_shares_by_origin(benchmark_script):
    # one selected AGN detection (AGN 7) with 10 own photons, 5 of AGN 8, 3 of halo 2 and
    # 2 background photons within 60"; photons further out do not count. One point-like
    # AGN detection of the same counts elsewhere, with only its own photons.
    vs = benchmark_script("validate_simulate")
    rng = np.random.default_rng(1)

    def around(ra, dec, n, r_arcsec):
        return (ra + rng.uniform(-r_arcsec, r_arcsec, n) / 3600.0,
                dec + rng.uniform(-r_arcsec, r_arcsec, n) / 3600.0)

    parts = [(10.0, 0.0, 10, -7), (10.0, 0.0, 5, -8), (10.0, 0.0, 3, 2), (10.0, 0.0, 2, 0),
             (11.0, 0.0, 12, -9)]
    ra, dec, src = [], [], []
    for r0, d0, n, sid in parts:
        a, d = around(r0, d0, n, 30.0)  # within a 30" box: inside 60"
        ra += list(a)
        dec += list(d)
        src += [sid] * n
    ra += [10.0 + 200 / 3600.0] * 50    # 200" away: outside
    dec += [0.0] * 50
    src += [-8] * 50
    ev = Table({"RA": ra, "DEC": dec, "SRC_ID": src})
    det = Table({"RA": [10.0, 11.0], "DEC": [0.0, 0.0], "EXT_LIKE": [9.0, 0.0],
                 "DET_LIKE": [20.0, 20.0], "ML_CTS": [15.0, 15.0],
                 "MATCH_TYPE": ["agn", "agn"], "AGN_ID": [-7, -9]})
    out = vs.agn_photon_shares(det, ev)
    sel = out["selected_agn"]
    assert sel["n"] == 1
    assert np.allclose(list(sel["median_share"].values()), [0.5, 0.25, 0.15, 0.1])
    assert sel["frac_other_agn_over_20pc"] == 1.0 and sel["frac_clusters_over_20pc"] == 0.0
    pt = out["pointlike_agn"]
    assert pt["n"] == 1 and pt["median_share"]["own_agn"] == 1.0
    assert sel["same_agn_detected_again"] == 0
    # a stronger point detection of AGN 7 elsewhere makes the selected one a second one
    det.add_row({"RA": 10.01, "DEC": 0.0, "EXT_LIKE": 0.0, "DET_LIKE": 90.0, "ML_CTS": 60.0,
                 "MATCH_TYPE": "agn", "AGN_ID": -7})
    again = vs.agn_photon_shares(det, ev)["selected_agn"]
    assert again["same_agn_detected_again"] == 1
    assert again["same_agn_detected_again_stronger"] == 1
    frac = vs._extended_fraction([30, 50, 60, 500], [0, 7, 1, 9], [6, 6, 6, 4])
    assert frac["20-40"] == [0.0, 1] and frac["40-80"] == [0.5, 2] and frac["320-inf"][1] == 0


def test_halo_number_counts_per_square_degree(benchmark_script):
    vs = benchmark_script("validate_simulate")
    truth = Table({"FLUX": [5e-15, 1.5e-14, 3e-14, 5e-14, 2e-13],
                   "FLUX_TOT": [1e-14, 3e-14, 6e-14, 1e-13, 4e-13]})
    out = vs.halo_number_counts(truth, 2.0, fluxes=(1e-14, 4e-14))
    assert out["FLUX"] == {"1e-14": 2.0, "4e-14": 1.0}
    assert out["FLUX_TOT"] == {"1e-14": 2.0, "4e-14": 1.5}
    assert "above_3.9e-14_z0.3-0.7" not in out          # no redshifts, no slice
    truth["z"] = [0.5, 0.5, 0.2, 0.5, 0.8]
    out = vs.halo_number_counts(truth, 2.0, fluxes=(1e-14,))
    # FLUX_TOT > 3.9e-14 at 0.3 < z < 0.7: only the fourth (1e-13, z = 0.5)
    assert out["above_3.9e-14_z0.3-0.7"][0] == 0.5
    assert abs(out["collins97_above_3.9e-14_z0.3-0.7"][0] - 15 / 17.2) < 1e-12
