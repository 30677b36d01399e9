"""Tests of aperture photometry (photutils + regions), the thermal spectrum and ECFs."""

import numpy as np
import pytest
from astropy import units as u
from astropy.cosmology import FlatLambdaCDM
from astropy.io import fits
from astropy.table import QTable, Table
from astropy.wcs import WCS
from regions import CirclePixelRegion, CircleSkyRegion, PixCoord
from scipy.integrate import quad
from scipy.special import k0

from astro_clustermass.photometry import (
    PhotometryError,
    aperture_count_rate,
    counts_image_from_events,
    mask_from_regions,
    measure_catalog,
)
from astro_clustermass.xray import ecf, spectra

NY = NX = 120
PIX = 4.0  # arcsec


def _wcs():
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [135.0, 1.0]
    w.wcs.crpix = [NX / 2 + 0.5, NY / 2 + 0.5]
    w.wcs.cdelt = [-PIX / 3600, PIX / 3600]
    return w


YY, XX = np.mgrid[:NY, :NX]
BKG = 2.0e-3 / 3600 * PIX ** 2  # ct/s/pix, eFEDS-like 2e-3 ct/s/arcmin^2


def _gauss(x0, y0, sigma, rate):
    p = np.exp(-0.5 * ((XX - x0) ** 2 + (YY - y0) ** 2) / sigma ** 2)
    return rate * p / p.sum()


def _exposure():
    expo = np.full((NY, NX), 1200.0)
    expo[:, :30] *= 0.5  # a vignetting step crossing the annulus
    return expo


# ---------------------------------------------------------------- photometry
def test_injected_sources_recovered_within_poisson_errors():
    """200 Poisson realisations of a compact source on background, with a bright
    point source in the annulus masked by a region: pulls are N(0, 1)."""
    rng = np.random.default_rng(0)
    expo = _exposure()
    true_rate = 0.05
    src = _gauss(58.3, 61.7, 3.0, true_rate)
    ps = np.zeros((NY, NX))
    ps[61, 100] = 0.5  # 600 counts: biases the background if not masked
    lam = (BKG + src + ps) * expo
    reg = CirclePixelRegion(PixCoord(100, 61), radius=4)
    pulls, pulls_unmasked = [], []
    for _ in range(200):
        c = rng.poisson(lam)
        r = aperture_count_rate(c, expo, (58.3, 61.7), radius=15, annulus=(1.6, 3.0),
                                regions=[reg])
        pulls.append((r["count_rate"][0].value - true_rate) / r["count_rate_err"][0].value)
        r2 = aperture_count_rate(c, expo, (58.3, 61.7), radius=15, annulus=(1.6, 3.0))
        pulls_unmasked.append((r2["count_rate"][0].value - true_rate) /
                              r2["count_rate_err"][0].value)
    pulls = np.array(pulls)
    assert abs(pulls.mean()) < 0.2
    assert 0.85 < pulls.std() < 1.15
    assert np.mean(np.abs(pulls) < 1) == pytest.approx(0.683, abs=0.08)
    assert np.mean(pulls_unmasked) < -1.0  # the unmasked point source biases it low


def test_extended_source_annulus_contamination_is_as_expected():
    """A beta-model cluster leaks into the annulus: the estimator's expectation is
    F_ap - F_ann E_ap/E_ann, and the errors are still Poisson around it."""
    rng = np.random.default_rng(1)
    expo = np.full((NY, NX), 1500.0)
    r2 = ((XX - 60) ** 2 + (YY - 60) ** 2) / 8.0 ** 2
    prof = (1 + r2) ** -1.5
    src = 0.3 * prof / prof.sum()
    inside = np.hypot(XX - 60, YY - 60) <= 20
    ann = (np.hypot(XX - 60, YY - 60) >= 30) & (np.hypot(XX - 60, YY - 60) <= 50)
    expected = src[inside].sum() - src[ann].sum() * inside.sum() / ann.sum()
    pulls = []
    for _ in range(100):
        c = rng.poisson((BKG + src) * expo)
        r = aperture_count_rate(c, expo, (60, 60), radius=20, annulus=(30, 50) * u.pix,
                                method="center")
        pulls.append((r["count_rate"][0].value - expected) / r["count_rate_err"][0].value)
    assert abs(np.mean(pulls)) < 0.3 and 0.8 < np.std(pulls) < 1.2
    assert expected < 0.97 * src[inside].sum()  # the contamination is real


def test_point_source_exact_counts_and_error_formula():
    counts = np.zeros((NY, NX))
    counts[60, 60] = 400
    counts[::7, ::5] += 1  # sparse background
    expo = np.full((NY, NX), 1000.0)
    # radii chosen so that no pixel centre lies exactly on an edge
    r = aperture_count_rate(counts, expo, (60, 60), radius=10.3, annulus=(20.3, 30.3) * u.pix,
                            method="center")[0]
    inside = np.hypot(XX - 60, YY - 60) <= 10.3
    ann = (np.hypot(XX - 60, YY - 60) >= 20.3) & (np.hypot(XX - 60, YY - 60) <= 30.3)
    s, cb = counts[inside].sum(), counts[ann].sum()
    bkg = cb * inside.sum() / ann.sum()
    assert r["src_counts"].value == pytest.approx(s)
    assert r["bkg_counts"].value == pytest.approx(bkg)
    assert r["count_rate"].value == pytest.approx((s - bkg) / 1000.0)
    err = np.sqrt(s + (inside.sum() / ann.sum()) ** 2 * cb) / 1000.0
    assert r["count_rate_err"].value == pytest.approx(err)


def test_sky_inputs_ds9_file_and_masked_area(tmp_path):
    w = _wcs()
    expo = np.full((NY, NX), 1000.0)
    counts = np.zeros((NY, NX))
    centre = w.pixel_to_world(60, 60)
    # DS9 file masking a source inside the aperture (at 6 pix = 24" from the centre)
    off = w.pixel_to_world(66, 60)
    reg_file = tmp_path / "ps.reg"
    reg_file.write_text("# Region file format: DS9\nfk5\n"
                        f"circle({off.ra.deg:.10f},{off.dec.deg:.10f},9\")\n")
    mask = mask_from_regions(str(reg_file), (NY, NX), w)
    assert mask[60, 66] and not mask[60, 60]
    assert mask.sum() == 21  # pixel centres within 2.25 pix: d^2 in {0, 1, 2, 4, 5}
    counts[~mask] = 1.0  # flat, 1 count per unmasked pixel
    r = aperture_count_rate(counts, expo, centre, radius=40 * u.arcsec,
                            annulus=(60, 90) * u.arcsec, wcs=w, regions=str(reg_file),
                            method="center")[0]
    assert r["radius_pix"] == pytest.approx(10.0)
    assert r["area_fraction"] < 1.0
    assert r["count_rate"].value == pytest.approx(0.0, abs=1e-9)  # flat -> no net
    sky = CircleSkyRegion(off, 9 * u.arcsec)
    np.testing.assert_array_equal(mask_from_regions([sky], (NY, NX), w), mask)


def test_masked_area_correction():
    expo = np.full((NY, NX), 1000.0)
    src = np.zeros((NY, NX))
    inside = np.hypot(XX - 60, YY - 60) <= 10
    src[inside] = 1.0  # flat disc, 1 count per pixel, no background
    reg = CirclePixelRegion(PixCoord(64, 60), radius=3)
    raw = aperture_count_rate(src, expo, (60, 60), 10, annulus=(2, 3), regions=[reg],
                              method="center")[0]
    cor = aperture_count_rate(src, expo, (60, 60), 10, annulus=(2, 3), regions=[reg],
                              method="center", correct_masked_area=True)[0]
    assert raw["count_rate"].value < inside.sum() / 1000.0
    assert cor["count_rate"].value == pytest.approx(inside.sum() / 1000.0, rel=0.02)


def test_events_to_image_and_measure_catalog():
    rng = np.random.default_rng(4)
    w = _wcs()
    expo = np.full((NY, NX), 1200.0)
    rates = np.array([0.08, 0.03])
    pix = [(40.0, 45.0), (85.0, 80.0)]
    lam = BKG * expo
    for (x0, y0), rt in zip(pix, rates):
        lam = lam + _gauss(x0, y0, 2.5, rt) * expo
    counts = rng.poisson(lam)
    # Turn the image into an event list (with energies, half out of band) and back.
    yy, xx = np.nonzero(counts)
    n = counts[yy, xx]
    ex = np.repeat(xx, n) + rng.uniform(-0.5, 0.5, n.sum())
    ey = np.repeat(yy, n) + rng.uniform(-0.5, 0.5, n.sum())
    sky = w.pixel_to_world(ex, ey)
    ev = Table({"RA": sky.ra.deg, "DEC": sky.dec.deg,
                "PI": rng.uniform(200, 2300, n.sum())})
    extra = Table({"RA": sky.ra.deg[:100], "DEC": sky.dec.deg[:100],
                   "PI": np.full(100, 5000.0)})  # out of band
    from astropy.table import vstack

    img = counts_image_from_events(vstack([ev, extra]), w, (NY, NX))
    np.testing.assert_array_equal(img, counts)
    cen = w.pixel_to_world(np.array([p[0] for p in pix]), np.array([p[1] for p in pix]))
    cat = Table({"RA": cen.ra.deg, "DEC": cen.dec.deg, "z": [0.2, 0.5],
                 "R500c_arcmin": [0.9, 0.9]})
    out = measure_catalog(cat, img, expo, w, radius="R500c_arcmin", annulus=(1.5, 2.5))
    assert "count_rate" not in cat.colnames  # input untouched
    pull = (out["count_rate"].value - rates) / out["count_rate_err"].value
    assert np.all(np.abs(pull) < 3.5)
    # L_X = 4 pi D_L^2 ECF(z, 3 keV) CR
    cosmo = FlatLambdaCDM(H0=70, Om0=0.3, Tcmb0=0)
    lx = (4 * np.pi * cosmo.luminosity_distance(cat["z"]) ** 2 *
          ecf.ecf(np.asarray(cat["z"]), 3.0) * out["count_rate"].quantity).to(u.erg / u.s)
    np.testing.assert_allclose(out["LX"].quantity.to_value(u.erg / u.s), lx.value,
                               rtol=1e-10)
    # ... and the scaling-relation estimators read these columns directly
    from astro_clustermass.relations.estimators import ScalingRelationEstimator

    for name in ("lx-chiu22", "cr-erass1"):
        res = ScalingRelationEstimator(name).estimate(out)
        assert res.valid.all()
    with pytest.raises(PhotometryError, match="already has"):
        measure_catalog(out, img, expo, w, radius=10)


def test_bad_inputs_are_clear_errors():
    c = np.zeros((10, 10))
    with pytest.raises(PhotometryError, match="exposure map shape"):
        aperture_count_rate(c, np.ones((5, 5)), (5, 5), 2)
    with pytest.raises(PhotometryError, match="WCS"):
        aperture_count_rate(c, 100.0, (5, 5), 2 * u.arcsec)
    with pytest.raises(PhotometryError, match="does not exist"):
        mask_from_regions("/nonexistent/file.reg", (10, 10))
    with pytest.raises(PhotometryError, match="annulus"):
        aperture_count_rate(c, 100.0, (5, 5), 3, annulus=(0.5, 2))


# ---------------------------------------------------------------- spectrum and ECF
def test_gaunt_factor_limits():
    u_small = 1e-4
    assert spectra.gaunt_born(u_small, 1.0) == pytest.approx(
        np.sqrt(3) / np.pi * np.log(4 / (np.exp(np.euler_gamma) * u_small)), rel=1e-3)
    assert spectra.gaunt_born(2.0, 1.0) == pytest.approx(
        np.sqrt(3) / np.pi * np.exp(1.0) * k0(1.0), rel=1e-12)


def test_mm83_cross_section_value():
    # Morrison & McCammon (1983): sigma(1 keV) = (120.6 + 169.3 - 47.7) 1e-24 cm^2
    assert spectra.mm83_cross_section(1.0) == pytest.approx(2.422e-22, rel=1e-3)
    assert spectra.absorption(1.0, 1e21) == pytest.approx(np.exp(-0.2422), rel=1e-3)


def test_ecf_against_independent_integral_with_flat_arf(tmp_path):
    """Flat 1 cm^2 ARF, no absorption: ECF = int_{0.5/(1+z)}^{2/(1+z)} E N dE /
    int_{0.2}^{2.3} N dE with N(E) = g(E(1+z)) exp(-E(1+z)/kT) / (E(1+z))."""
    e = np.linspace(0.1, 12.0, 2001)
    cols = [fits.Column("ENERG_LO", "E", array=e[:-1]),
            fits.Column("ENERG_HI", "E", array=e[1:]),
            fits.Column("SPECRESP", "D", array=np.ones(e.size - 1))]
    path = tmp_path / "flat.arf"
    fits.BinTableHDU.from_columns(cols, name="SPECRESP").writeto(path)
    z, kT = 0.3, 2.5

    def n(E):
        er = E * (1 + z)
        return np.sqrt(3) / np.pi * np.exp(er / (2 * kT)) * k0(er / (2 * kT)) * \
            np.exp(-er / kT) / er

    flux = quad(lambda E: E * n(E), 0.5 / 1.3, 2.0 / 1.3)[0]
    rate = quad(n, 0.2, 2.3, limit=200)[0]
    expected = flux / rate * (1 * u.keV).to_value(u.erg)
    got = ecf.compute_ecf(z, kT, nh=0.0, arf=str(path))
    assert got == pytest.approx(expected, rel=2e-3)


def test_shipped_table_matches_direct_computation():
    for z, kT, nh in [(0.35, 3.0, 3e20), (0.8, 6.0, 1e20), (0.1, 1.0, 1e21)]:
        assert ecf.ecf(z, kT, nh).value == pytest.approx(ecf.compute_ecf(z, kT, nh),
                                                         rel=1e-5)
    # interpolated between grid points to better than 1%
    assert ecf.ecf(0.33, 2.7, 2e20).value == pytest.approx(ecf.compute_ecf(0.33, 2.7, 2e20),
                                                           rel=0.01)
    with pytest.raises(ValueError, match="outside the ECF table"):
        ecf.ecf(3.0)


def test_luminosity_count_rate_round_trip():
    z = np.array([0.1, 0.6])
    cr = [0.2, 0.01] * u.ct / u.s
    lx, lxe = ecf.count_rate_to_luminosity(cr, z, kT=4.0, rate_err=0.1 * cr)
    np.testing.assert_allclose(lxe / lx, 0.1)
    back = ecf.luminosity_to_count_rate(lx, z, kT=4.0)
    np.testing.assert_allclose(back.value, cr.value, rtol=1e-12)


def test_cli_photometry(tmp_path):
    """The module's CLI entry points (``astro-clustermass photometry``)."""
    import argparse

    from astro_clustermass.cli import photometry

    rng = np.random.default_rng(7)
    w = _wcs()
    expo = np.full((NY, NX), 1200.0)
    counts = rng.poisson((BKG + _gauss(60, 60, 2.5, 0.1)) * expo)
    fits.PrimaryHDU(counts.astype(np.int32), header=w.to_header()).writeto(tmp_path / "c.fits")
    fits.PrimaryHDU(expo, header=w.to_header()).writeto(tmp_path / "e.fits")
    c = w.pixel_to_world(60, 60)
    Table({"RA": [c.ra.deg], "DEC": [c.dec.deg], "z": [0.3]}).write(tmp_path / "cat.fits")
    parser = argparse.ArgumentParser()
    photometry.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "cat.fits"), "-o", str(tmp_path / "out.fits"),
                              "--counts", str(tmp_path / "c.fits"), "--exposure",
                              str(tmp_path / "e.fits"), "--radius", "60"])
    assert photometry.run(args) == 0
    out = QTable.read(tmp_path / "out.fits")
    assert abs(out["count_rate"][0].value - 0.1) < 3 * out["count_rate_err"][0].value
    assert out["LX"].unit == u.erg / u.s
    # the same from an eSASS-like event file binned on the exposure map's grid
    yy, xx = np.nonzero(counts)
    n = counts[yy, xx]
    sky = w.pixel_to_world(np.repeat(xx, n).astype(float), np.repeat(yy, n).astype(float))
    ev = fits.BinTableHDU.from_columns(
        [fits.Column("RA", "D", array=sky.ra.deg), fits.Column("DEC", "D", array=sky.dec.deg),
         fits.Column("PI", "E", array=np.full(n.sum(), 1000.0))], name="EVENTS")
    fits.HDUList([fits.PrimaryHDU(), ev]).writeto(tmp_path / "ev.fits")
    args.counts, args.output = str(tmp_path / "ev.fits"), str(tmp_path / "out2.fits")
    assert photometry.run(args) == 0
    out2 = QTable.read(tmp_path / "out2.fits")
    assert out2["count_rate"][0] == out["count_rate"][0]
