"""Energy-band images (astro_clustermass.ebi): checks beyond tests/test_ebi_images.py.

Pixel-exact WCS round trips (also near the poles), FITS headers with non-default
parameters, event files with PI in keV / wrong units, chunked in-memory reading, atomic
FITS writes, corrupt files through EventList.read, missing columns, teaching pickles as
pandas DataFrames and through the CLI.
"""

import pickle

import numpy as np
import pytest
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
)
from astro_clustermass.io.ebi_stack import (
    convert_teaching_pickle,
    read_ebi_stack,
    read_teaching_pickle,
)
from astro_clustermass.io.events import EventList

P = EBIParameters()
NOSMOOTH = EBIParameters(kernel_size=(1, 1, 1), clip=None)


def sky_table(sky, energy_keV, **extra):
    n = len(sky)
    cols = {"RA": sky.ra.deg * u.deg, "DEC": sky.dec.deg * u.deg,
            "PI": np.broadcast_to(np.asarray(energy_keV, float) * 1000, (n,)).copy() * u.eV}
    cols.update(extra)
    return Table(cols)


def write_events(path, table, pi_unit="eV"):
    cols = []
    for c in table.colnames:
        arr = np.asarray(getattr(table[c], "value", table[c]))
        fmt = "D" if arr.dtype.kind == "f" else "J"
        unit = {"RA": "deg", "DEC": "deg", "PI": pi_unit, "TIME": "s"}.get(c)
        cols.append(fits.Column(c, fmt, unit=unit, array=arr))
    fits.HDUList([fits.PrimaryHDU(),
                  fits.BinTableHDU.from_columns(cols, name="EVENTS")]).writeto(path)


# -- WCS -------------------------------------------------------------------------------------
@pytest.mark.parametrize("ra0, dec0", [(150.0, 2.0), (0.0, -30.0), (359.995, 10.0),
                                       (120.0, 89.0), (300.0, -89.2)])
def test_every_pixel_centre_holds_exactly_its_photon(ra0, dec0):
    c = SkyCoord(ra0, dec0, unit="deg")
    w = ebi.ebi_wcs(c, P)
    yy, xx = np.mgrid[0:50:7, 0:50:7]
    yy = np.concatenate([yy.ravel(), [0, 0, 49, 49]])
    xx = np.concatenate([xx.ravel(), [0, 49, 0, 49]])
    sky = w.pixel_to_world(xx, yy)
    # one photon per pixel, band k = pixel index mod 10 (energy at the band centre)
    band = (yy + xx) % 10
    im = energy_band_image(sky_table(sky, 0.25 + 0.205 * (band + 0.5)), c, NOSMOOTH)
    expected = np.zeros((50, 50, 10))
    np.add.at(expected, (yy, xx, band), 1)
    np.testing.assert_array_equal(im.counts, expected)
    # orientation: pixel x grows west (RA decreases), y grows north
    assert w.wcs.cdelt[0] < 0 < w.wcs.cdelt[1] or w.wcs.cd[0, 0] < 0 < w.wcs.cd[1, 1]
    east = w.pixel_to_world(24.5 - 5, 24.5)
    north = w.pixel_to_world(24.5, 24.5 + 5)
    assert c.position_angle(east).to_value(u.deg) == pytest.approx(90, abs=0.5)
    assert c.position_angle(north).to_value(u.deg) == pytest.approx(0, abs=0.5) or \
        c.position_angle(north).to_value(u.deg) == pytest.approx(360, abs=0.5)


def test_fits_header_wcs_and_non_default_parameters_round_trip(tmp_path):
    p = EBIParameters(npix=150, pixel_arcsec=8.0, emin_keV=0.3, emax_keV=2.0, nbands=5,
                      rebin=30, kernel_size=(3, 3, 5), kernel_sigma=1.0, clip=None)
    c = SkyCoord(33.0, -70.0, unit="deg")
    rng = np.random.default_rng(11)
    w = ebi.ebi_wcs(c, p)
    sky = w.pixel_to_world(rng.uniform(0, 29, 400), rng.uniform(0, 29, 400))
    im = energy_band_image(sky_table(sky, rng.uniform(0.2, 2.1, 400)), c, p)
    assert im.data.shape == (30, 30, 5)
    path = tmp_path / "im.fits"
    im.write_fits(path)
    back = EnergyBandImage.read_fits(path)
    assert back.params == p and back.params.clip is None
    np.testing.assert_array_equal(back.data, im.data)
    assert back.n_photons == im.n_photons == int(im.counts.sum())
    assert u.allclose(back.band_edges, p.band_edges)
    with fits.open(path) as h:
        hw = WCS(h[0].header).celestial
        np.testing.assert_allclose(h["BANDS"].data["E_MAX"], p.band_edges.value[1:])
    px, py = rng.uniform(0, 29, 20), rng.uniform(0, 29, 20)
    a, b = hw.pixel_to_world(px, py), w.pixel_to_world(px, py)
    assert a.separation(b).max() < 1e-6 * u.arcsec
    im.write_fits(path, overwrite=True)  # overwrite allowed when asked


def test_failed_fits_write_leaves_no_file(tmp_path, monkeypatch):
    c = SkyCoord(150.0, 2.0, unit="deg")
    im = energy_band_image(sky_table(SkyCoord([150.0], [2.0], unit="deg"), 1.0), c)

    def half_then_fail(self, fileobj, *args, **kwargs):
        with open(fileobj, "wb") as fh:
            fh.write(b"SIMPLE  =                    T" + b" " * 50)
        raise OSError("disk full")

    monkeypatch.setattr(fits.HDUList, "writeto", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        im.write_fits(tmp_path / "x.fits")
    assert list(tmp_path.iterdir()) == []


# -- event files -----------------------------------------------------------------------------
@pytest.fixture
def cluster():
    rng = np.random.default_rng(12)
    n = 2500
    c = SkyCoord(215.0, -1.0, unit="deg")
    sky = c.spherical_offsets_by(rng.normal(0, 150, n) * u.arcsec,
                                 rng.normal(0, 150, n) * u.arcsec)
    t = sky_table(sky, rng.uniform(0.2, 2.4, n), TIME=np.arange(n, dtype=float),
                  FLAG=np.zeros(n, np.int32), PAT_TYP=rng.integers(1, 5, n).astype(np.int32))
    return t, c


def test_event_file_units_are_read_from_the_header(cluster, tmp_path):
    t, c = cluster
    ref = energy_band_image(t, c)
    write_events(tmp_path / "ev.fits", t)
    kev = t.copy()
    kev["PI"] = t["PI"].to(u.keV)
    write_events(tmp_path / "kev.fits", kev, pi_unit="keV")
    for name in ("ev.fits", "kev.fits"):
        im = energy_band_image(EventList.read(tmp_path / name), c)
        np.testing.assert_allclose(im.data, ref.data, atol=1e-6)
        assert im.n_photons == ref.n_photons
    write_events(tmp_path / "bad.fits", t, pi_unit="s")
    with pytest.raises(u.UnitConversionError, match="PI"):
        EventList.read(tmp_path / "bad.fits")


def test_chunked_in_memory_and_memmap_give_the_same_images(cluster, tmp_path):
    t, c = cluster
    centers = c.spherical_offsets_by([0, 200, -500] * u.arcsec, [0, -100, 300] * u.arcsec)
    ref = energy_band_images(EventList(t), centers)
    write_events(tmp_path / "ev.fits", t)
    for kw in ({"chunk_rows": 97}, {"chunk_rows": 300, "memmap": True},
               {"chunk_rows": 1, "memmap": True, "index_dir": str(tmp_path / "idx")}):
        ev = EventList.read(tmp_path / "ev.fits", **kw)
        assert len(ev) == len(EventList(t))
        np.testing.assert_array_equal(energy_band_images(ev, centers), ref)


def test_duplicates_inside_overlapping_files_are_removed_once(cluster, tmp_path):
    t, c = cluster
    # three files: all photons, the first half again, and the first half a third time
    write_events(tmp_path / "a.fits", t)
    write_events(tmp_path / "b.fits", t[: len(t) // 2])
    write_events(tmp_path / "c.fits", t[: len(t) // 2])
    ev = EventList.read([tmp_path / n for n in ("a.fits", "b.fits", "c.fits")])
    single = EventList(t)
    assert len(ev) == len(single)
    np.testing.assert_array_equal(energy_band_image(ev, c).data,
                                  energy_band_image(single, c).data)


def test_corrupt_and_incomplete_files_name_the_file(cluster, tmp_path):
    t, _ = cluster
    good = tmp_path / "good.fits"
    write_events(good, t)
    raw = good.read_bytes()
    (tmp_path / "cut.fits").write_bytes(raw[: len(raw) - 20_000])
    (tmp_path / "junk.fits").write_bytes(b"not a fits file at all" * 200)
    for name in ("cut.fits", "junk.fits"):
        with pytest.raises(OSError, match=name):
            EventList.read([good, tmp_path / name])
    nora = t.copy()
    del nora["RA"]
    with pytest.raises(KeyError, match="RA"):
        EventList(nora)
    write_events(tmp_path / "nora.fits", nora)
    with pytest.raises(KeyError, match="RA"):
        EventList.read(tmp_path / "nora.fits")


def test_analytic_counts_and_centre_checks(cluster):
    t, c = cluster
    # keep the photons well inside the 1200" x 1200" cut-out (offsets sigma 150")
    sep = c.separation(SkyCoord(t["RA"], t["DEC"], unit="deg")).to_value(u.arcsec)
    t = t[sep < 550]
    e = t["PI"].quantity.to_value(u.keV)
    inside = (e >= 0.25) & (e < 2.30)
    assert 0 < inside.sum() < len(t)
    im = energy_band_image(t, c, NOSMOOTH)
    assert im.counts.sum() == im.n_photons == inside.sum()
    with pytest.raises(TypeError, match="SkyCoord"):
        energy_band_images(t, [(215.0, -1.0)])
    with pytest.raises(ValueError, match="non-finite"):
        energy_band_image(t, SkyCoord(np.nan, 0.0, unit="deg"))


# -- teaching pickles ------------------------------------------------------------------------
def test_teaching_dataframe_pickle(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(13)
    images = rng.random((3, 50, 50, 10)).astype(np.float32)
    df = pd.DataFrame({"gsm_3dImgs": list(images), "M500c": [1e14, 2e14, 3e14],
                       "z": [0.1, 0.2, 0.3]})
    path = tmp_path / "t.pkl"
    df.to_pickle(path)
    with pytest.raises(ValueError, match="allow_pickle"):
        read_teaching_pickle(path)
    s = read_teaching_pickle(path, allow_pickle=True)
    np.testing.assert_array_equal(s.images, images)
    assert list(s.catalog["M500c"]) == [1e14, 2e14, 3e14]


def test_teaching_pickle_cli_needs_the_opt_in(tmp_path, capsys):
    from astro_clustermass.cli import main

    rng = np.random.default_rng(14)
    images = rng.random((2, 50, 50, 10)).astype(np.float32)
    path = tmp_path / "t.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"gsm_3dImgs": images, "z": np.array([0.1, 0.5])}, fh)
    out = tmp_path / "t.h5"
    with pytest.raises(ValueError, match="allow_pickle"):
        convert_teaching_pickle(path, out)
    assert main(["ebi", "--convert-pickle", str(path), "-o", str(out)]) != 0
    assert "allow_pickle" in capsys.readouterr().err
    assert not out.exists()
    assert main(["ebi", "--convert-pickle", str(path), "--allow-pickle", "-o", str(out)]) == 0
    s = read_ebi_stack(out)
    np.testing.assert_array_equal(s.images, images)
    assert s.params is None and list(s.catalog["z"]) == [0.1, 0.5]


def test_rejection_counts_add_up_to_the_rows_dropped():
    rng = np.random.default_rng(15)
    n = 400
    sky = SkyCoord(150.0, 2.0, unit="deg").spherical_offsets_by(
        rng.normal(0, 100, n) * u.arcsec, rng.normal(0, 100, n) * u.arcsec)
    t = sky_table(sky, rng.uniform(0.3, 2.0, n),
                  FLAG=np.where(rng.random(n) < 0.2, 0x10, 0).astype(np.int32),
                  PAT_TYP=rng.integers(0, 7, n).astype(np.int32))
    t["PI"][rng.random(n) < 0.2] = -1.0
    t["RA"][rng.random(n) < 0.2] = np.nan  # some of these fail other cuts too
    ev = EventList(t)
    assert len(ev) + sum(ev.rejected.values()) == n
    assert all(v > 0 for v in ev.rejected.values())


def test_stack_without_images_is_refused_and_closed(tmp_path):
    import h5py

    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    for mmap in (False, True):
        # the traceback kept in `info` would keep an unclosed file open
        with pytest.raises(KeyError, match="'ebi'") as info:
            read_ebi_stack(path, mmap=mmap)
    assert info.traceback
    with h5py.File(path, "w") as f:  # fails while the reader still holds the file
        f["ebi"] = np.zeros((1, 50, 50, 10), np.float32)
    assert read_ebi_stack(path).images.shape == (1, 50, 50, 10)
