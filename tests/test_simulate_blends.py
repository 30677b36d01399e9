"""The detection's two-point-source alternative for blends of AGN (simulate.blends)."""

import numpy as np

from astro_clustermass.simulate import detect
from astro_clustermass.simulate.config import DEFAULT_CONFIG as CFG
from astro_clustermass.simulate.instrument import sample_king_radii

HALF = 600.0


def _flat(x, y):
    return np.full(np.shape(x), 2200.0)


def _king(rng, n, a, x0, y0):
    r = sample_king_radii(rng, n, a, 1.5, 1800.0)
    phi = rng.random(n) * 2 * np.pi
    return x0 + r * np.cos(phi), y0 + r * np.sin(phi)


def test_agn_blend_is_two_point_sources_and_cluster_stays_extended():
    rng = np.random.default_rng(3)
    blends = {True: 0, False: 0}
    clusters = {True: 0, False: 0}
    for _ in range(4):
        nb = rng.poisson(0.0028 * 2200 * (2 * HALF / 60) ** 2)
        bx, by = rng.uniform(-HALF, HALF, nb), rng.uniform(-HALF, HALF, nb)
        x1, y1 = _king(rng, 60, CFG.psf_rc, -17.5, 0.0)      # two AGN 35" apart
        x2, y2 = _king(rng, 60, CFG.psf_rc, 17.5, 0.0)
        cx, cy = _king(rng, 120, CFG.psf_rc + rng.uniform(10, 40), -300.0, 200.0)
        x, y = np.r_[bx, x1, x2, cx], np.r_[by, y1, y2, cy]
        for two in (True, False):
            d = detect.detect_patch(x, y, HALF, _flat, CFG.replace(det_two_point=two), 0.53)
            sel = (d["EXT_LIKE"] > 6) & (d["DET_LIKE"] > 5)
            blends[two] += int(sel[np.hypot(d["x"], d["y"]) < 40].any())
            clusters[two] += int(sel[np.hypot(d["x"] + 300, d["y"] - 200) < 40].any())
    assert blends[False] >= 3          # without the alternative the blend looks extended
    assert blends[True] <= 1
    assert clusters[True] == clusters[False] >= 3


def test_cool_core_cluster_stays_one_extended_source():
    from astro_clustermass.simulate import emission

    rng = np.random.default_rng(7)
    props = {"beta": np.array([0.67]), "rc": np.array([0.2]), "rc_cc": np.array([0.03]),
             "f_cc": np.array([0.4]), "b_to_a": np.array([0.8]), "pa": np.array([0.3]),
             "Xoff": np.array([0.02]), "xoff_pa": np.array([0.0])}
    half = 900.0
    for _ in range(4):
        nb = rng.poisson(0.0028 * 2200 * (2 * half / 60) ** 2)
        bx, by = rng.uniform(-half, half, nb), rng.uniform(-half, half, nb)
        dx, dy, _ = emission.sample_cluster_offsets(rng, np.array([300]), props,
                                                    np.array([200.0]), CFG)
        px, py = sample_king_radii(rng, dx.size, CFG.psf_rc, 1.5, 1800.0), rng.random(dx.size)
        x = np.r_[bx, dx + px * np.cos(2 * np.pi * py)]
        y = np.r_[by, dy + px * np.sin(2 * np.pi * py)]
        d = detect.detect_patch(x, y, half, _flat, CFG, 0.53)
        near = np.hypot(d["x"], d["y"]) < 150
        strongest = np.argmax(np.where(near, d["DET_LIKE"], -1))
        # the core is not split off as a point source: the strongest detection is extended
        assert d["EXT"][strongest] > 0 and d["EXT_LIKE"][strongest] > 6
