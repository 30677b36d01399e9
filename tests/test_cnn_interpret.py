"""Tests of astro_clustermass.cnn.interpret (torch only where marked)."""

import numpy as np
import pytest
from astropy import units as u

from astro_clustermass.cnn.interpret import (
    background_level,
    core_masking_test,
    extreme_disagreement,
    mask_disc,
)


def _row(table, estimator, selection="all"):
    m = ((np.asarray(table["estimator"]) == estimator) & (np.asarray(table["binning"]) == "all")
         & (np.asarray(table["selection"]) == selection))
    assert m.sum() == 1
    return table[m][0]


def _val(x):
    return float(getattr(getattr(x, "unmasked", x), "value", x))


def test_mask_disc_hand_counted():
    rng = np.random.default_rng(0)
    ebi = rng.random((2, 50, 50, 10)).astype(np.float32) + 1.0
    before = ebi.copy()
    out, npix = mask_disc(ebi, radius_pix=2.0, fill="zero")
    # centre (24.5, 24.5): offsets (+-0.5, +-0.5) and (+-1.5, +-0.5) lie within 2 pixels
    assert npix.tolist() == [12, 12]
    assert (out[:, 23:27, 23:27, :] == 0).sum() == 2 * 12 * 10
    assert np.array_equal(out[:, :20], before[:, :20])
    assert np.array_equal(ebi, before)  # input untouched
    bkg = background_level(ebi)
    yy, xx = np.indices((50, 50))
    outer = np.hypot(yy - 24.5, xx - 24.5) > 20
    assert np.allclose(bkg[1, 3], np.median(ebi[1][outer][:, 3]))
    out, _ = mask_disc(ebi, 2.0)  # background fill
    assert np.allclose(out[1, 24, 24], bkg[1])
    out, npix = mask_disc(ebi, 0.4, center=(10.0, 10.0), fill=7.0)
    assert npix.tolist() == [1, 1] and np.all(out[:, 10, 10] == 7.0)
    with pytest.raises(ValueError, match="fill"):
        mask_disc(ebi, 2.0, fill="nan")


def test_extreme_disagreement():
    largest, smallest = extreme_disagreement([0.3, np.nan, 0.1, 0.5, 0.2], k=2)
    assert largest.tolist() == [3, 0] and smallest.tolist() == [2, 4]


class _RegionReader:
    """A stand-in 'ensemble' whose mass comes from the counts in an annulus."""

    def __init__(self, rmin, rmax):
        yy, xx = np.indices((50, 50))
        r = np.hypot(yy - 24.5, xx - 24.5)
        self.region = (r >= rmin) & (r <= rmax)

    def predict(self, ebi, z, batch_size=256, progress=False):
        s = np.asarray(ebi)[:, self.region, :].sum(axis=(1, 2))
        mean = 14.0 + np.log10(s / self.ref)
        sig = np.full(len(mean), 0.1)
        return mean, sig, mean[None], sig[None]


def _mock_clusters(n=300, seed=1):
    """Images whose core and outskirts brightness both scale with the mass."""
    rng = np.random.default_rng(seed)
    lt = rng.uniform(13.5, 15.0, n)
    yy, xx = np.indices((50, 50))
    r = np.hypot(yy - 24.5, xx - 24.5)
    profile = 1.0 / (1.0 + (r / 3.0) ** 2) ** 1.5
    amp = 10 ** (lt - 14.0)
    ebi = 0.05 + amp[:, None, None, None] * profile[None, :, :, None] * np.ones(10)
    return ebi.astype(np.float32), rng.uniform(0.1, 0.8, n), lt


def test_core_masking_detects_a_core_reader_and_not_an_outskirts_reader():
    ebi, z, lt = _mock_clusters()
    core_reader = _RegionReader(0, 2)
    outskirts = _RegionReader(5, 15)
    for reader in (core_reader, outskirts):
        reader.ref = 1.0
        reader.ref = 10 ** (np.median(reader.predict(ebi, z)[0] - lt))
    metrics, preds = core_masking_test(core_reader, ebi, z, lt, radius_pix=2.0)
    un = _val(_row(metrics, "unmasked")["scatter"])
    cm = _val(_row(metrics, "core_masked")["scatter"])
    ctl = _val(_row(metrics, "control_masked")["scatter"])
    assert un < 0.05
    assert ctl == pytest.approx(un, abs=1e-6)  # control disc (r = 4-8 px) misses the core
    assert cm > 0.2 > 4 * un  # the core reader loses its information
    assert metrics.meta["core_masking"]["pixels_masked"] == 12
    metrics, _ = core_masking_test(outskirts, ebi, z, lt, radius_pix=2.0)
    assert _val(_row(metrics, "core_masked")["scatter"]) == pytest.approx(
        _val(_row(metrics, "unmasked")["scatter"]), abs=1e-6)
    assert abs(metrics.meta["core_masking"]["core_masked_shift_mean_dex"]) < 1e-6
    assert "log10M500c_core_masked_err" in preds.colnames
    with pytest.raises(ValueError, match="overlaps"):
        core_masking_test(outskirts, ebi, z, lt, radius_pix=4.0, control_offset_pix=6.0)


def test_core_masking_selection_from_catalog():
    from astropy.table import Table

    ebi, z, lt = _mock_clusters(n=60)
    reader = _RegionReader(5, 15)
    reader.ref = 1.0
    reader.ref = 10 ** (np.median(reader.predict(ebi, z)[0] - lt))
    cat = Table({"EXT_LIKE": np.r_[np.full(20, 100.0), np.full(40, 1.0)],
                 "DET_LIKE": np.full(60, 100.0)})
    metrics, _ = core_masking_test(reader, ebi, z, lt, catalog=cat,
                                   selections={"cut": "EXT_LIKE > 6 & DET_LIKE > 5"})
    assert _row(metrics, "unmasked", "cut")["n"] == 20


# -- with torch: a tiny random ensemble ----------------------------------------------
@pytest.fixture(scope="module")
def tiny_ensemble():
    torch = pytest.importorskip("torch")
    from astro_clustermass.cnn.dataset import Normalisation
    from astro_clustermass.cnn.ensemble import Ensemble
    from astro_clustermass.cnn.model import build_model

    torch.manual_seed(0)
    models = [build_model("seed000", filters=(4, 4), dense=(8,))[0] for _ in range(3)]
    return Ensemble(models, Normalisation(), fuse=False)


def test_member_disagreement(tiny_ensemble):
    from astro_clustermass.cnn.interpret import disagreement_figure, member_disagreement

    ebi, z, lt = _mock_clusters(n=12)
    t = member_disagreement(tiny_ensemble, ebi, z)
    mu = t["mu_members"].value
    assert mu.shape == (12, 3)
    assert np.allclose(t["member_range"].value, mu.max(1) - mu.min(1))
    assert np.allclose(t["mean"].value, mu.mean(1))
    sig = t["sigma_members"].value
    assert np.allclose(t["sigma_star"].value ** 2,
                       (sig ** 2 + mu ** 2).mean(1) - mu.mean(1) ** 2, rtol=1e-6)
    assert t["member_range"].unit == u.dex
    assert np.isclose(t.meta["sigma_ratio_mean"], np.mean(sig / t["sigma_star"].value[:, None]))
    fig = disagreement_figure(ebi, t, lt, z, k=2, band_edges_keV=np.linspace(0.25, 2.3, 11))
    assert len([a for a in fig.axes if a.images]) == 40


def test_gradient_matches_finite_differences(tiny_ensemble):
    import torch

    from astro_clustermass.cnn.interpret import _ensemble_mean_dex, gradient_maps

    ebi, z, lt = _mock_clusters(n=6)
    # noise breaks the exact ties of the flat background, where max-pooling has kinks
    ebi = ebi + np.random.default_rng(2).uniform(0, 0.05, ebi.shape).astype(np.float32)
    ens = tiny_ensemble
    for m in ens.models:
        m.double()
    try:
        res = gradient_maps(ens, ebi[:1], z[:1], np.array([14.2]), mass_bins=[14.0, 14.5])
        g = res["mean_gradient"][0]
        eps = 1e-6
        for (y, x, b) in [(24, 24, 0), (20, 27, 5), (3, 40, 9)]:
            plus = ebi[:1].astype(float).copy()
            minus = plus.copy()
            plus[0, y, x, b] += eps
            minus[0, y, x, b] -= eps
            with torch.no_grad():
                fp = _ensemble_mean_dex(ens, torch.tensor(plus), torch.tensor(z[:1])).item()
                fm = _ensemble_mean_dex(ens, torch.tensor(minus), torch.tensor(z[:1])).item()
            assert g[y, x, b] == pytest.approx((fp - fm) / (2 * eps), rel=1e-3, abs=1e-10)
        # the differentiable mean agrees with the ensemble's own prediction
        with torch.no_grad():
            direct = _ensemble_mean_dex(ens, torch.tensor(ebi.astype(float)),
                                        torch.tensor(z)).numpy()
    finally:
        for m in ens.models:
            m.float()
    mean, _, _, _ = ens.predict(ebi, z)
    assert np.allclose(direct, mean, atol=1e-4)


def test_gradient_maps_binning(tiny_ensemble):
    from astro_clustermass.cnn.interpret import gradient_maps

    ebi, z, lt = _mock_clusters(n=10)
    lt = np.array([13.2] * 4 + [14.2] * 6)
    res = gradient_maps(tiny_ensemble, ebi, z, lt, mass_bins=[13.0, 13.5, 14.0, 14.5],
                        max_per_bin=5, r500_pix=np.full(10, 8.0), batch_size=4)
    assert res["n"] == [4, 0, 5]
    assert res["mean_gradient"].shape == (3, 50, 50, 10)
    assert np.all(res["mean_gradient"][1] == 0)
    assert np.allclose(np.nansum(res["band_fraction"][[0, 2]], axis=1), 1.0)
    assert res["radial_profile"].shape == (3, len(res["radial_edges"]) - 1)
    from astro_clustermass.evaluation.plots import plot_gradient_maps

    fig = plot_gradient_maps(res, band_edges_keV=np.linspace(0.25, 2.3, 11))
    assert len(fig.axes) >= 9


def test_per_cluster_radius_and_control_offsets():
    ebi, z, lt = _mock_clusters(n=3)
    out, npix = mask_disc(ebi, radius_pix=np.array([0.8, 2.0, 0.0]), fill="zero")
    assert npix.tolist() == [4, 12, 0]
    reader = _RegionReader(5, 15)
    reader.ref = 1.0
    with pytest.raises(ValueError, match="overlaps"):
        core_masking_test(reader, ebi, z, lt, radius_pix=np.array([1.0, 4.0, 1.0]))
    metrics, _ = core_masking_test(reader, ebi, z, lt, radius_pix=np.array([1.0, 4.0, 1.0]),
                                   control_offset_pix=np.array([6.0, 9.0, 6.0]))
    info = metrics.meta["core_masking"]
    assert info["radius_pix"] == "per cluster" and info["radius_pix_median"] == 1.0
    with pytest.raises(ValueError, match="leave the image"):
        core_masking_test(reader, ebi, z, lt, radius_pix=2.0, control_offset_pix=23.0)


def test_radial_profile_skips_empty_annuli(tiny_ensemble):
    from astro_clustermass.cnn.interpret import gradient_maps

    ebi, z, lt = _mock_clusters(n=2)
    lt = np.array([14.2, 14.3])
    # R500 = 2 pixels: the 0-0.1 R500 annulus (0.2 px) holds no pixel centre
    res = gradient_maps(tiny_ensemble, ebi, z, lt, mass_bins=[14.0, 14.5],
                        r500_pix=np.array([2.0, 20.0]), radial_edges=[0.0, 0.1, 0.5, 1.0])
    assert res["radial_n"][0].tolist() == [1, 2, 2]
    one = gradient_maps(tiny_ensemble, ebi[1:], z[1:], lt[1:], mass_bins=[14.0, 14.5],
                        r500_pix=np.array([20.0]), radial_edges=[0.0, 0.1, 0.5, 1.0])
    # the innermost annulus is the second cluster's value alone, not halved by a zero
    assert res["radial_profile"][0, 0] == pytest.approx(one["radial_profile"][0, 0])


def test_deepdream_raises_the_mass_and_stays_physical(tiny_ensemble):
    from astro_clustermass.cnn.interpret import deepdream

    ebi, z, lt = _mock_clusters(n=4)
    ebi = ebi + np.random.default_rng(3).uniform(0, 0.05, ebi.shape).astype(np.float32)
    before = ebi.copy()
    res = deepdream(tiny_ensemble, ebi, z, r500_pix=np.full(4, 10.0), n_iter=2,
                    max_change=0.5)
    m = res["log10_mass"]
    assert m.shape == (3, 4)
    assert np.all(m[1] >= m[0] - 1e-6) and np.all(m[2] >= m[1] - 1e-6)  # gradient ascent
    assert np.all(res["images"] >= 0) and np.all(res["images"] <= 36)
    change = np.abs(res["images"].astype(float) - before).max(axis=(1, 2, 3))
    assert np.all(change <= 2 * 0.5 + 1e-5)  # at most max_change per iteration
    assert res["delta_over_n"].shape == (2, 4, len(res["radial_edges"]) - 1)
    assert np.array_equal(ebi, before)
