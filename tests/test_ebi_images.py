"""Energy-band images (astro_clustermass.ebi): geometry, bands, smoothing, files."""

import pickle

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from astro_clustermass import ebi
from astro_clustermass.ebi import (
    EBIParameters,
    EnergyBandImage,
    energy_band_image,
    energy_band_images,
    smooth_and_clip,
)
from astro_clustermass.io.ebi_stack import (
    convert_teaching_pickle,
    read_ebi_stack,
    read_teaching_pickle,
    write_ebi_stack,
)
from astro_clustermass.io.events import EventList

P = EBIParameters()
NOSMOOTH = EBIParameters(kernel_size=(1, 1, 1), clip=None)


def tangent_wcs(ra0, dec0):
    """1"-pixel TAN WCS whose pixel (0, 0) is the centre; +x = west, +y = north."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra0, dec0]
    w.wcs.crpix = [1, 1]
    w.wcs.cdelt = [-1 / 3600, 1 / 3600]
    w.wcs.set()
    return w


def photons(ra0, dec0, x_arcsec, y_arcsec, energy_keV, **extra):
    """Photon table at tangent-plane offsets (x west, y north) [arcsec] from (ra0, dec0)."""
    ra, dec = tangent_wcs(ra0, dec0).wcs_pix2world(np.atleast_1d(x_arcsec),
                                                    np.atleast_1d(y_arcsec), 0)
    cols = {"RA": ra * u.deg, "DEC": dec * u.deg,
            "PI": np.atleast_1d(energy_keV) * 1000 * u.eV}
    cols.update(extra)
    return Table(cols)


def reference_counts(x, y, e, p=P):
    """np.histogramdd of the seed recipe: (y, x, band) in 24" pixels over 1200"."""
    half = p.npix * p.pixel_arcsec / 2
    edges = np.linspace(-half, half, p.rebin + 1)
    h, _ = np.histogramdd(np.column_stack([y, x, e]),
                          bins=(edges, edges, p.band_edges.to_value(u.keV)))
    return h


# -- geometry and bands ----------------------------------------------------------------------
@pytest.mark.parametrize("ra0, dec0", [(150.0, 2.0), (10.0, -60.0), (0.01, 30.0), (200.0, 88.9)])
def test_photons_land_in_the_right_pixel_and_band(ra0, dec0):
    # (x, y) offsets in arcsec: x to the west, y to the north; energies in keV
    cases = [(0.5, 0.5, 0.30, (25, 25, 0)),     # just NW of the centre -> pixel (25, 25)
             (-0.5, -0.5, 0.30, (24, 24, 0)),
             (590.0, 3.0, 1.0, (25, 49, 3)),     # far west edge
             (-590.0, 10.0, 2.29, (25, 0, 9)),   # far east, top band
             (12.0, -300.0, 0.454, (12, 25, 0)),
             (-100.0, 250.0, 0.456, (35, 20, 1))]
    for x, y, e, (iy, ix, ib) in cases:
        im = energy_band_image(photons(ra0, dec0, x, y, e), SkyCoord(ra0, dec0, unit="deg"),
                               NOSMOOTH)
        assert im.counts.sum() == 1
        assert im.counts[iy, ix, ib] == 1, (x, y, e, np.argwhere(im.counts))


def test_band_edges_and_energy_range():
    edges = P.band_edges.to_value(u.keV)
    np.testing.assert_allclose(edges, 0.25 + 0.205 * np.arange(11), atol=1e-12)
    # a photon exactly on an edge goes to the upper band; outside 0.25-2.30 keV it is dropped
    e = np.array([0.25, 0.455, 0.660, 2.299, 0.249, 2.30, 5.0])
    t = photons(150.0, 2.0, np.zeros(e.size), np.zeros(e.size), e)
    im = energy_band_image(t, SkyCoord(150.0, 2.0, unit="deg"), NOSMOOTH)
    assert im.n_photons == 4
    assert list(np.nonzero(im.counts.sum(axis=(0, 1)))[0]) == [0, 1, 2, 9]


def test_random_photons_match_the_histogram_recipe():
    rng = np.random.default_rng(3)
    n = 20_000
    x, y = rng.normal(0, 200, n), rng.normal(0, 200, n)
    e = rng.uniform(0.1, 2.6, n)
    ra0, dec0 = 35.0, -4.5
    im = energy_band_image(photons(ra0, dec0, x, y, e), SkyCoord(ra0, dec0, unit="deg"))
    ref = reference_counts(x, y, e)
    np.testing.assert_array_equal(im.counts, ref)
    smooth = np.clip(scipy.signal.convolve(ref, P.kernel(), mode="same"), 0, P.clip)
    np.testing.assert_allclose(im.data, smooth, atol=2e-5)
    assert im.n_photons == ref.sum()


def test_photons_of_a_cluster_are_all_counted():
    rng = np.random.default_rng(0)
    n = 777
    t = photons(80.0, 10.0, rng.normal(0, 60, n), rng.normal(0, 60, n),
                rng.uniform(0.3, 2.2, n))
    im = energy_band_image(t, SkyCoord(80.0, 10.0, unit="deg"), NOSMOOTH)
    assert im.counts.sum() == n == im.n_photons


# -- smoothing -------------------------------------------------------------------------------
def test_kernel_is_the_seed_formula():
    k = P.kernel()
    i, j, m = np.meshgrid(np.arange(-1, 2), np.arange(-1, 2), np.arange(-5, 6), indexing="ij")
    ref = np.exp(-((i / 1) ** 2 + (j / 1) ** 2 + (m / 5) ** 2) / (2 * 0.75 ** 2))
    np.testing.assert_allclose(k, ref / ref.sum(), rtol=1e-12)
    assert k.shape == (3, 3, 11)


def test_smoothing_matches_scipy_and_clips():
    rng = np.random.default_rng(5)
    cube = rng.poisson(3.0, (50, 50, 10)).astype(float)
    cube[20:23, 30:33, :] = 200.0  # bright core: clipped after smoothing
    ours = smooth_and_clip(cube[None], P)[0]
    by_signal = np.clip(scipy.signal.convolve(cube, P.kernel(), mode="same"), 0, 36)
    by_ndimage = np.clip(scipy.ndimage.convolve(cube, P.kernel(), mode="constant", cval=0),
                         0, 36)
    np.testing.assert_allclose(ours, by_signal, atol=1e-4)
    np.testing.assert_allclose(ours, by_ndimage, atol=1e-4)
    assert ours.max() == 36.0 and ours.dtype == np.float32
    unclipped = smooth_and_clip(cube[None], P.replace(clip=None))[0]
    assert unclipped.max() > 36


def test_parameters_validate_and_round_trip():
    assert EBIParameters.from_dict(None) == P
    assert EBIParameters.from_dict(P.to_dict()) == P
    assert P.image_shape == (50, 50, 10) and P.rebinned_pixel == 24 * u.arcsec
    with pytest.raises(ValueError, match="must divide"):
        EBIParameters(rebin=7)
    with pytest.raises(ValueError, match="odd"):
        EBIParameters(kernel_size=(3, 3, 10))
    with pytest.raises(ValueError, match="unknown EBI parameter"):
        EBIParameters.from_dict({"npix": 300, "pixels": 4})
    with pytest.raises(TypeError, match="plain number"):
        EBIParameters(pixel_arcsec=4 * u.arcsec)


# -- WCS -------------------------------------------------------------------------------------
def test_wcs_pixel_centres_hold_their_photons():
    ra0, dec0 = 210.0, 55.0
    c = SkyCoord(ra0, dec0, unit="deg")
    w = ebi.ebi_wcs(c, P)
    rng = np.random.default_rng(1)
    px, py = rng.integers(0, 50, 30), rng.integers(0, 50, 30)
    sky = w.pixel_to_world(px, py)
    t = Table({"RA": sky.ra.deg * u.deg, "DEC": sky.dec.deg * u.deg,
               "PI": np.full(30, 1000.0) * u.eV})
    counts = energy_band_image(t, c, NOSMOOTH).counts.sum(axis=2)
    for x, y in zip(px, py):
        assert counts[y, x] >= 1
    assert counts.sum() == 30


def test_fits_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    t = photons(150.0, 2.0, rng.normal(0, 100, 500), rng.normal(0, 100, 500),
                rng.uniform(0.3, 2.2, 500))
    im = energy_band_image(t, SkyCoord(150.0, 2.0, unit="deg"))
    path = tmp_path / "ebi.fits"
    im.write_fits(path)
    back = EnergyBandImage.read_fits(path)
    np.testing.assert_array_equal(back.data, im.data)
    assert back.params == im.params and back.n_photons == im.n_photons
    assert back.center.separation(im.center) < 1e-6 * u.arcsec
    with fits.open(path) as h:
        assert h[0].data.shape == (10, 50, 50)
        w3 = WCS(h[0].header)
        np.testing.assert_allclose(h["BANDS"].data["E_MIN"], P.band_edges.value[:-1])
    # band axis: centre of band k at 0.25 + 0.205 (k + 1/2) keV
    _, _, energy = w3.wcs_pix2world([[24.5, 24.5, 3]], 0)[0]
    assert energy * (1 if w3.wcs.cunit[2] == "keV" else 1e-3) == pytest.approx(0.25 + 0.205 * 3.5)
    with pytest.raises(FileExistsError):
        im.write_fits(path)


# -- event lists -----------------------------------------------------------------------------
def write_events(path, table, name="EVENTS"):
    cols = [fits.Column(c, "D" if c in ("RA", "DEC", "TIME") else "E" if c == "PI" else "J",
                        unit={"RA": "deg", "DEC": "deg", "PI": "eV", "TIME": "s"}.get(c),
                        array=np.asarray(getattr(table[c], "value", table[c])))
            for c in table.colnames]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols, name=name)]
                 ).writeto(path)


@pytest.fixture
def field():
    """Photons of two clusters either side of a tile boundary at RA = 150 deg."""
    rng = np.random.default_rng(4)
    n = 6000
    ra = np.concatenate([rng.normal(149.98, 0.03, n // 2), rng.normal(150.02, 0.03, n // 2)])
    dec = rng.normal(2.0, 0.03, n)
    t = Table({"TIME": rng.uniform(0, 1e4, n), "RA": ra * u.deg, "DEC": dec * u.deg,
               "PI": rng.uniform(200, 2400, n) * u.eV, "FLAG": np.zeros(n, np.int32),
               "PAT_TYP": rng.integers(1, 5, n)})
    centers = SkyCoord([149.98, 150.0, 150.02], [2.0, 2.0, 2.0], unit="deg")
    return t, centers


def test_tile_edge_clusters_get_photons_of_every_file(field, tmp_path):
    t, centers = field
    ra = np.asarray(t["RA"].value)
    west = t[ra < 150.0 + 0.01]     # the two "tiles" overlap by 0.02 deg (36")
    east = t[ra >= 150.0 - 0.01]
    write_events(tmp_path / "a.fits", west)
    write_events(tmp_path / "b.fits", east)
    one = energy_band_images(EventList(t), centers)
    ev = EventList.read([tmp_path / "a.fits", tmp_path / "b.fits"])
    assert ev.n_duplicates == int(((ra >= 149.99) & (ra < 150.01)).sum())
    np.testing.assert_array_equal(energy_band_images(ev, centers), one)
    # without de-duplication the photons in the overlap are counted twice
    ev2 = EventList.read([tmp_path / "a.fits", tmp_path / "b.fits"], deduplicate=False)
    assert len(ev2) == len(ev) + ev.n_duplicates
    # chunked reading and the memory-mapped index give the same images
    ev3 = EventList.read([tmp_path / "a.fits", tmp_path / "b.fits"], chunk_rows=700,
                         memmap=True, index_dir=str(tmp_path / "index"))
    assert len(ev3) == len(ev)
    np.testing.assert_array_equal(energy_band_images(ev3, centers), one)


def test_many_centres_equal_one_at_a_time(field):
    t, centers = field
    ev = EventList(t)
    many = energy_band_images(ev, centers, batch_size=2)
    for k in range(len(centers)):
        np.testing.assert_array_equal(many[k], energy_band_image(ev, centers[k]).data)


def test_ra_wrap_and_pole():
    rng = np.random.default_rng(6)
    n = 3000
    for ra0, dec0 in [(0.0, 0.0), (359.99, -20.0), (45.0, 89.95)]:
        x, y = rng.normal(0, 150, n), rng.normal(0, 150, n)
        e = rng.uniform(0.3, 2.2, n)
        t = photons(ra0, dec0, x, y, e)
        im = energy_band_image(t, SkyCoord(ra0, dec0, unit="deg"), NOSMOOTH)
        np.testing.assert_array_equal(im.counts, reference_counts(x, y, e))


def test_quality_cuts_are_applied_and_counted():
    n = 10
    t = photons(150.0, 2.0, np.zeros(n), np.zeros(n), np.full(n, 1.0),
                FLAG=np.array([0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x40000000], np.int64),
                PAT_TYP=np.array([1, 1, 0, 5, 2, 3, 4, 1, 1, 1]))
    t["PI"][7] = -5.0  # eV
    t["RA"][8] = np.nan
    ev = EventList(t)
    assert len(ev) == 4
    assert ev.rejected["FLAG"] == 2 and ev.rejected["PAT_TYP"] == 2
    assert ev.rejected["PI <= 0"] == 1 and ev.rejected["non-finite"] == 1
    assert len(EventList(t, flag_mask=None, pat_typ=None)) == 8


def test_units_are_converted_and_wrong_units_refused():
    t = photons(150.0, 2.0, [10.0, -30.0], [5.0, 40.0], [0.5, 1.5])
    c = SkyCoord(150.0, 2.0, unit="deg")
    kev = t.copy()
    kev["PI"] = kev["PI"].to(u.keV)
    np.testing.assert_array_equal(energy_band_image(kev, c).data, energy_band_image(t, c).data)
    bad = t.copy()
    bad["PI"] = t["PI"].value * u.s
    with pytest.raises(u.UnitConversionError, match="PI"):
        EventList(bad)


def test_input_table_is_not_modified():
    t = photons(150.0, 2.0, [10.0, -30.0], [5.0, 40.0], [0.5, 1.5])
    before = t.copy()
    energy_band_image(t, SkyCoord(150.0, 2.0, unit="deg"))
    assert all(np.array_equal(t[c], before[c]) for c in t.colnames)


# -- bad input -------------------------------------------------------------------------------
def test_bad_inputs_give_clear_errors(tmp_path):
    t = photons(150.0, 2.0, [0.0], [0.0], [1.0])
    c = SkyCoord(150.0, 2.0, unit="deg")
    with pytest.raises(KeyError, match="PI"):
        EventList(Table({"RA": [1.0], "DEC": [2.0]}))
    with pytest.raises(TypeError, match="SkyCoord"):
        energy_band_image(t, (150.0, 2.0))
    with pytest.raises(ValueError, match="non-finite"):
        energy_band_images(t, SkyCoord([150.0, np.nan], [2.0, 2.0], unit="deg"))
    with pytest.raises(FileNotFoundError, match="nope.fits"):
        EventList.read(tmp_path / "nope.fits")
    good = tmp_path / "good.fits"
    write_events(good, photons(150.0, 2.0, np.zeros(200), np.zeros(200), np.ones(200)))
    raw = good.read_bytes()
    truncated = tmp_path / "truncated.fits"
    truncated.write_bytes(raw[:len(raw) // 2 + 100])
    with pytest.raises(OSError, match="truncated.fits"):
        energy_band_image(str(truncated), c)
    nopi = tmp_path / "nopi.fits"
    write_events(nopi, Table({"RA": [150.0], "DEC": [2.0], "TIME": [0.0]}))
    with pytest.raises(KeyError, match="no PI column"):
        EventList.read(nopi)


# -- stacks and the teaching layout ----------------------------------------------------------
def test_hdf5_stack_round_trip_and_atomic_write(tmp_path, monkeypatch):
    rng = np.random.default_rng(8)
    images = rng.random((4, 50, 50, 10)).astype(np.float32)
    cat = Table({"z": [0.1, 0.2, 0.3, 0.4], "M500c": [1e14, 2e14, 3e14, 4e14]})
    path = tmp_path / "stack.h5"
    write_ebi_stack(path, images, P, catalog=cat)
    s = read_ebi_stack(path)
    np.testing.assert_array_equal(s.images, images)
    assert s.params == P and list(s.catalog["z"]) == [0.1, 0.2, 0.3, 0.4]
    with pytest.raises(FileExistsError):
        write_ebi_stack(path, images, P)
    with pytest.raises(ValueError, match="catalogue rows"):
        write_ebi_stack(tmp_path / "x.h5", images, P, catalog=cat[:3])

    import h5py

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(h5py.File, "create_dataset", broken)
    with pytest.raises(OSError, match="disk full"):
        write_ebi_stack(tmp_path / "new.h5", images, P)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.h5"]


def test_teaching_pickle_needs_opt_in_and_converts(tmp_path):
    rng = np.random.default_rng(9)
    images = rng.random((3, 50, 50, 10)).astype(np.float32)
    path = tmp_path / "teaching.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"gsm_3dImgs": images, "M500c": np.array([1e14, 2e14, 5e14]),
                     "z": np.array([0.1, 0.2, 0.3])}, fh)
    with pytest.raises(ValueError, match="allow_pickle"):
        read_teaching_pickle(path)
    s = read_teaching_pickle(path, allow_pickle=True)
    np.testing.assert_array_equal(s.images, images)
    assert s.params is None and list(s.catalog["z"]) == [0.1, 0.2, 0.3]
    out = tmp_path / "teaching.h5"
    convert_teaching_pickle(path, out, allow_pickle=True, params=P)
    back = read_ebi_stack(out)
    np.testing.assert_array_equal(back.images, images)
    assert back.params == P and list(back.catalog["M500c"]) == [1e14, 2e14, 5e14]


def test_teaching_pickle_is_not_unpickled_without_opt_in(tmp_path):
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"gsm_3dImgs": Evil()}, fh)
    with pytest.raises(ValueError, match="allow_pickle"):
        read_teaching_pickle(path)
    assert not marker.exists()


def test_cli_builds_a_stack(field, tmp_path, capsys):
    from astro_clustermass.cli import main

    t, centers = field
    write_events(tmp_path / "ev.fits", t)
    cat = Table({"RA": centers.ra.deg * u.deg, "DEC": centers.dec.deg * u.deg,
                 "z": [0.1, 0.2, 0.3]})
    cat.write(tmp_path / "cat.fits")
    out = tmp_path / "ebis.h5"
    assert main(["ebi", str(tmp_path / "cat.fits"), "--events", str(tmp_path / "ev.fits"),
                 "-o", str(out)]) == 0
    s = read_ebi_stack(out)
    np.testing.assert_array_equal(s.images, energy_band_images(EventList(t), centers))
    assert len(s.catalog) == 3 and s.params == P
