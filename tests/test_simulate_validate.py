"""benchmarks/validate_simulate.py: the like-for-like comparison of field and stamps."""

import importlib.util
import os

import numpy as np
from astropy.table import Table

from astro_clustermass.simulate import SimConfig, simulate_stamps

_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "validate_simulate.py")


def _module():
    spec = importlib.util.spec_from_file_location("validate_simulate", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_field_like_stamps_inner_box_and_preselection():
    vs = _module()
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


def test_measure_stamps_area_from_stamps_run(tmp_path):
    # a run given by area (no n_halos_requested): the virtual area per stamp is the run's
    # area over its stamps, and the efficiencies count the selected central clusters
    vs = _module()
    r = simulate_stamps(str(tmp_path), area=0.2, seed=5, config=SimConfig(chunk_size=4),
                        progress=False, keep_events="none", max_chunks=1)
    man = r.manifest
    out = vs.measure_stamps(str(tmp_path))
    assert out["stamps"] == 4
    assert np.isclose(out["virtual_area_deg2"], man["area_deg2"] * 4 / man["n_stamps"])
    eff = out["efficiency_by_log10M"]
    assert sum(v[1] for v in eff.values()) == out["selected_central"]
    assert sum(v[2] for v in eff.values()) <= 4
