"""Aperture photometry of clusters on X-ray images: count rates and luminosities.

From a counts image and an exposure map (or an event list binned onto a WCS), measure
the net count rate in a circular aperture with the background from a local annulus,
excluding point sources given as `regions` (DS9 region files or region objects), with
Poisson errors; then convert the rate to a rest-frame 0.5-2 keV luminosity with the
energy conversion factors of `astro_clustermass.xray.ecf`.

The sums over apertures are done by `photutils.aperture` (``aperture_photometry``) on
the counts, the exposure and the unmasked-pixel maps. For one source:

- ``S``: counts in the aperture; ``E_ap``: exposure summed over its unmasked pixels
  [s pix]; ``A_ap``: its unmasked area [pix].
- ``C_b``, ``E_b``: counts and exposure summed over the annulus.
- background expected in the aperture ``B = C_b E_ap / E_b``; net counts ``S - B``;
  mean exposure ``t = E_ap / A_ap``; count rate ``(S - B) / t``.
- Poisson error: ``sigma^2 = S + (E_ap / E_b)^2 C_b`` (source and background counts),
  divided by ``t``.

The rate refers to the unmasked part of the aperture; ``correct_masked_area=True``
scales it by total / unmasked area (flat surface brightness under the masks).
Count rates of exposure-map-normalised images are on-axis (vignetting-corrected) rates,
like eSASS ``ML_RATE``; the shipped ECFs assume that (see :ref:`photometry`).
"""

from __future__ import annotations

import os

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import QTable, Table

from .io.events import as_event_list
from .utils.logger import log

__all__ = ["mask_from_regions", "counts_image_from_events", "aperture_count_rate",
           "measure_catalog", "PhotometryError"]


class PhotometryError(ValueError):
    """Inputs to the photometry are inconsistent (shapes, WCS, units, regions)."""


# ---------------------------------------------------------------------------- masks
def _load_regions(regions):
    from regions import Region, Regions

    if regions is None:
        return []
    if isinstance(regions, (str, os.PathLike)):
        if not os.path.exists(regions):
            raise PhotometryError(f"region file {os.fspath(regions)!r} does not exist")
        try:
            return list(Regions.read(os.fspath(regions), format="ds9"))
        except Exception as exc:  # regions raises several parser errors
            raise PhotometryError(f"cannot read DS9 region file {os.fspath(regions)!r}: "
                                  f"{exc}") from None
    if isinstance(regions, Region):
        return [regions]
    return list(regions)


def mask_from_regions(regions, shape, wcs=None):
    """Boolean mask (True = excluded) of the pixels inside any of ``regions``.

    Parameters
    ----------
    regions : str, `regions.Region`, `regions.Regions` or list
        A DS9 region file, or region objects (sky regions need ``wcs``).
    shape : tuple
        Image shape (ny, nx).
    wcs : `~astropy.wcs.WCS`, optional
    """
    from regions import PixelRegion, SkyRegion

    mask = np.zeros(shape, dtype=bool)
    for reg in _load_regions(regions):
        if isinstance(reg, SkyRegion):
            if wcs is None:
                raise PhotometryError(f"sky region {reg!r} needs a WCS to become a mask")
            reg = reg.to_pixel(wcs)
        if not isinstance(reg, PixelRegion):
            raise PhotometryError(f"not a region: {reg!r}")
        rmask = reg.to_mask(mode="center")
        img = rmask.to_image(shape)
        if img is not None:
            mask |= img.astype(bool)
    return mask


# ---------------------------------------------------------------------------- events
def counts_image_from_events(events, wcs, shape, band=(0.2, 2.3) * u.keV):
    """Bin photons onto the pixel grid of ``wcs``.

    Parameters
    ----------
    events : `~astro_clustermass.io.events.EventList`, `~astropy.table.Table` or path(s)
        The photons: an event list, a table with RA, DEC [deg] and PI [eV], or eSASS
        event files. Tables and files are read through
        `~astro_clustermass.io.events.EventList`, with the same eSASS quality cuts
        (``FLAG``, ``PAT_TYP``, ``PI > 0``) as the energy-band images of the CNN.
    wcs : `~astropy.wcs.WCS`
        Celestial WCS of the output image.
    shape : tuple
        (ny, nx).
    band : Quantity (2,)
        Energy band kept, ``[lo, hi)``; None keeps all.

    Returns
    -------
    counts : 2-D int array
    """
    try:
        ev = as_event_list(events)
    except KeyError as exc:  # a table without RA/DEC/PI
        raise PhotometryError(f"event list: {exc.args[0]}") from exc
    ra, dec = np.asarray(ev.ra, float), np.asarray(ev.dec, float)
    if band is not None:
        energy = ev.energy
        lo, hi = u.Quantity(band, u.keV)
        keep = (energy >= lo) & (energy < hi)
        ra, dec = ra[keep], dec[keep]
    x, y = wcs.world_to_pixel(SkyCoord(ra * u.deg, dec * u.deg))
    ny, nx = shape
    img, _, _ = np.histogram2d(y, x, bins=(ny, nx), range=((-0.5, ny - 0.5), (-0.5, nx - 0.5)))
    return img.astype(np.int64)


# ---------------------------------------------------------------------------- photometry
def _pixel_scale(wcs):
    from astropy.wcs.utils import proj_plane_pixel_scales

    scales = proj_plane_pixel_scales(wcs.celestial) * u.deg
    if not np.isclose(scales[0], scales[1], rtol=1e-3):
        raise PhotometryError("non-square pixels are not supported")
    return scales[0].to(u.arcsec)


def _to_pixels(value, wcs, label):
    if isinstance(value, u.Quantity) and value.unit.physical_type == "angle":
        if wcs is None:
            raise PhotometryError(f"{label} is an angle; pass a WCS to convert it to pixels")
        return (value / _pixel_scale(wcs)).to_value(u.one)
    if isinstance(value, u.Quantity) and value.unit != u.pix:
        raise PhotometryError(f"{label} must be an angle or a number of pixels, got {value.unit}")
    return np.asarray(u.Quantity(value).value if isinstance(value, u.Quantity) else value,
                      float)


def aperture_count_rate(counts, exposure, position, radius, annulus=(1.5, 2.5), wcs=None,
                        regions=None, mask=None, method="exact", correct_masked_area=False):
    """Net count rate in a circular aperture with a local background annulus.

    Parameters
    ----------
    counts : 2-D array
        Counts image (one energy band).
    exposure : 2-D array or float
        Exposure map [s] (vignetted, as eSASS expmaps) or a uniform exposure time.
        Pixels with exposure <= 0 are excluded.
    position : `~astropy.coordinates.SkyCoord` or (x, y)
        Aperture centre(s); pixel coordinates are zero-based.
    radius : Quantity (angle) or float (pixels)
        Aperture radius, scalar or one per position.
    annulus : tuple
        Inner and outer background radii, in units of ``radius`` (floats) or as
        angles / pixels (Quantities).
    wcs : `~astropy.wcs.WCS`, optional
        Needed for sky positions, angular radii and sky regions.
    regions : str, Region(s), optional
        Point sources etc. to exclude (DS9 file or `regions` objects).
    mask : 2-D bool array, optional
        Further pixels to exclude (True = excluded).
    method : str
        photutils aperture overlap method (``"exact"``, ``"center"``, ``"subpixel"``).
    correct_masked_area : bool
        Scale rates by (aperture area / unmasked aperture area).

    Returns
    -------
    `~astropy.table.QTable`
        One row per position: ``x, y, radius_pix, src_counts, bkg_counts`` (expected
        background in the aperture), ``net_counts, net_counts_err, exposure`` (mean in the
        aperture, s), ``area_fraction`` (unmasked), ``count_rate, count_rate_err`` (ct/s),
        ``bkg_rate_density`` (ct/s/pix), ``flag`` (str).
    """
    from photutils.aperture import CircularAnnulus, CircularAperture, aperture_photometry

    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2:
        raise PhotometryError(f"counts image must be 2-D, got shape {counts.shape}")
    if np.ndim(exposure) == 0:
        exposure = np.full(counts.shape, float(u.Quantity(exposure, u.s).value
                                               if isinstance(exposure, u.Quantity)
                                               else exposure))
    exposure = np.asarray(u.Quantity(exposure, u.s).value if isinstance(exposure, u.Quantity)
                          else exposure, dtype=float)
    if exposure.shape != counts.shape:
        raise PhotometryError(f"exposure map shape {exposure.shape} differs from counts "
                              f"image shape {counts.shape}")
    if (counts < 0).any():
        raise PhotometryError("counts image has negative values; expected photon counts")
    excl = ~(np.isfinite(exposure) & (exposure > 0)) | ~np.isfinite(counts)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != counts.shape:
            raise PhotometryError(f"mask shape {mask.shape} differs from image {counts.shape}")
        excl |= mask
    if regions is not None:
        excl |= mask_from_regions(regions, counts.shape, wcs)
    if isinstance(position, SkyCoord):
        if wcs is None:
            raise PhotometryError("sky positions need a WCS")
        x, y = wcs.world_to_pixel(position)
    else:
        pos = np.asarray(position, dtype=float)
        if pos.ndim == 1:
            pos = pos[None, :]
        x, y = pos[:, 0], pos[:, 1]
    x, y = np.atleast_1d(x).astype(float), np.atleast_1d(y).astype(float)
    n = x.size
    r = np.broadcast_to(_to_pixels(radius, wcs, "radius"), (n,)).astype(float)
    if np.any(~(r > 0)):
        raise PhotometryError("aperture radius must be > 0")
    ann = [a if isinstance(a, u.Quantity) else float(a) for a in annulus]
    if isinstance(ann[0], u.Quantity):
        r_in = np.broadcast_to(_to_pixels(ann[0], wcs, "annulus"), (n,))
        r_out = np.broadcast_to(_to_pixels(ann[1], wcs, "annulus"), (n,))
    else:
        r_in, r_out = ann[0] * r, ann[1] * r
    if np.any(r_in < r) or np.any(r_out <= r_in):
        raise PhotometryError("need radius <= annulus inner radius < outer radius")

    data = np.where(excl, 0.0, counts)
    expo = np.where(excl, 0.0, exposure)
    ones = (~excl).astype(float)
    rows = []
    for i in range(n):
        ap = CircularAperture((x[i], y[i]), r=r[i])
        an = CircularAnnulus((x[i], y[i]), r_in=r_in[i], r_out=r_out[i])
        sums = {}
        for label, img in (("c", data), ("e", expo), ("a", ones)):
            t = aperture_photometry(img, [ap, an], method=method)
            sums[label] = (float(t["aperture_sum_0"][0]), float(t["aperture_sum_1"][0]))
        rows.append((sums, float(ap.area)))

    out = {k: np.full(n, np.nan) for k in ("src_counts", "bkg_counts", "net_counts",
                                           "net_counts_err", "exposure", "area_fraction",
                                           "count_rate", "count_rate_err", "bkg_rate_density")}
    flags = np.full(n, "", dtype=object)
    for i, (s, full_area) in enumerate(rows):
        src, cb = s["c"]
        e_ap, e_b = s["e"]
        a_ap, a_b = s["a"]
        out["src_counts"][i] = src
        out["area_fraction"][i] = a_ap / full_area
        if a_ap <= 0 or e_ap <= 0:
            flags[i] = "aperture has no exposed, unmasked pixels"
            continue
        if e_b <= 0 or a_b <= 0:
            flags[i] = "background annulus has no exposed, unmasked pixels"
            continue
        bkg_density = cb / e_b
        bkg = bkg_density * e_ap
        tmean = e_ap / a_ap
        net = src - bkg
        var = src + (e_ap / e_b) ** 2 * cb
        scale = full_area / a_ap if correct_masked_area else 1.0
        out["bkg_counts"][i] = bkg
        out["net_counts"][i] = net
        out["net_counts_err"][i] = np.sqrt(var)
        out["exposure"][i] = tmean
        out["count_rate"][i] = net / tmean * scale
        out["count_rate_err"][i] = np.sqrt(var) / tmean * scale
        out["bkg_rate_density"][i] = bkg_density
        if cb == 0:
            flags[i] = "no background counts in the annulus"
        if a_ap / full_area < 0.5:
            flags[i] = (flags[i] + "; " if flags[i] else "") + \
                f"only {a_ap / full_area:.0%} of the aperture unmasked"

    table = QTable()
    table["x"], table["y"] = x, y
    table["radius_pix"] = r
    for key in ("src_counts", "bkg_counts", "net_counts", "net_counts_err"):
        table[key] = out[key] * u.ct
    table["exposure"] = out["exposure"] * u.s
    table["area_fraction"] = out["area_fraction"]
    table["count_rate"] = out["count_rate"] * u.ct / u.s
    table["count_rate_err"] = out["count_rate_err"] * u.ct / u.s
    table["bkg_rate_density"] = out["bkg_rate_density"] * u.ct / u.s / u.pix
    table["flag"] = flags.astype(str)
    return table


def measure_catalog(table, counts, exposure, wcs, radius, annulus=(1.5, 2.5), regions=None,
                    mask=None, luminosity=True, kT=None, nh=None, cosmology=None,
                    column_map=None, method="exact", correct_masked_area=False):
    """Measure count rates (and L_X) for every cluster of a catalogue.

    Returns a copy of ``table`` with the canonical columns ``count_rate``,
    ``count_rate_err`` (ct/s) and, with ``luminosity=True`` and a redshift column,
    ``LX``, ``LX_err`` (erg/s, rest-frame 0.5-2 keV within the aperture), plus
    ``phot_net_counts``, ``phot_bkg_counts``, ``phot_area_fraction`` and ``phot_flag``.
    The estimators ``cr-erass1`` and ``lx-chiu22`` then read these columns.

    Parameters
    ----------
    table : `~astropy.table.Table`
        With RA, DEC (deg) (and z for luminosities), recognised as in
        `astro_clustermass.catalog`.
    counts, exposure, wcs
        Counts image (0.2-2.3 keV), exposure map [s] and their WCS.
    radius : Quantity (angle), float (pixels), or str
        Aperture radius; a column name (e.g. ``"R500c_arcmin"``, unit arcmin if the
        column has none) gives one radius per cluster (R500 for L_X within R500).
    annulus, regions, mask, method, correct_masked_area
        As in `aperture_count_rate`.
    kT : Quantity, float or str, optional
        Temperature for the ECF [keV]: a value, a column name, or None for the
        canonical ``T`` column if present, else 3 keV.
    nh : float, optional
        Galactic column [cm^-2] (default `astro_clustermass.xray.ecf.DEFAULT_NH`).
    cosmology : `~astropy.cosmology.Cosmology`, optional
        For D_L (default flat LCDM H0=70, Om0=0.3).
    column_map : dict, optional
        Canonical name -> column name.
    """
    from .catalog import CatalogView
    from .xray import ecf as _ecf

    if not isinstance(table, Table):
        raise PhotometryError(f"expected an astropy Table, got {type(table).__name__}")
    need_z = luminosity
    view = CatalogView(table, required=("RA", "DEC"), optional=("z", "T"),
                       column_map=column_map)
    coords = SkyCoord(view["RA"], view["DEC"])
    if isinstance(radius, str):
        if radius not in table.colnames:
            raise PhotometryError(f"radius column {radius!r} not in the table")
        col = table[radius]
        rq = u.Quantity(col) if getattr(col, "unit", None) else np.asarray(col, float) * u.arcmin
        radius = rq
    good = view.row_valid & np.isfinite(np.atleast_1d(_to_pixels(radius, wcs, "radius")) *
                                        np.ones(len(table)))
    res = aperture_count_rate(counts, exposure, coords, radius, annulus=annulus, wcs=wcs,
                              regions=regions, mask=mask, method=method,
                              correct_masked_area=correct_masked_area)
    new_cols = ["count_rate", "count_rate_err", "phot_net_counts", "phot_bkg_counts",
                "phot_area_fraction", "phot_flag"] + (["LX", "LX_err"] if luminosity else [])
    clash = [c for c in new_cols if c in table.colnames]
    if clash:
        raise PhotometryError(f"table already has column(s) {clash}; rename or remove them "
                              "before measuring")
    out = table.copy(copy_data=True)
    rate = np.where(good, res["count_rate"].value, np.nan)
    err = np.where(good, res["count_rate_err"].value, np.nan)
    flag = np.where(good, res["flag"], "missing position or radius").astype(str)
    out["count_rate"] = rate * u.ct / u.s
    out["count_rate_err"] = err * u.ct / u.s
    out["phot_net_counts"] = res["net_counts"]
    out["phot_bkg_counts"] = res["bkg_counts"]
    out["phot_area_fraction"] = res["area_fraction"]
    if need_z and "z" in view:
        z = view["z"].value
        if kT is None:
            kt = view["T"].to_value(u.keV) if "T" in view else np.full(len(table),
                                                                        _ecf.DEFAULT_KT)
            kt = np.where(np.isfinite(kt), kt, _ecf.DEFAULT_KT)
        elif isinstance(kT, str):
            kt = np.asarray(u.Quantity(table[kT], u.keV).value
                            if getattr(table[kT], "unit", None) else table[kT], float)
        else:
            kt = np.broadcast_to(u.Quantity(kT, u.keV).value, (len(table),))
        okz = np.isfinite(z) & (z > 0) & (z <= 2.0) & np.isfinite(rate)
        lx = np.full(len(table), np.nan)
        lxe = np.full(len(table), np.nan)
        if okz.any():
            lq, le = _ecf.count_rate_to_luminosity(
                rate[okz] * u.ct / u.s, z[okz], kT=kt[okz],
                nh=_ecf.DEFAULT_NH if nh is None else nh, cosmology=cosmology,
                rate_err=err[okz] * u.ct / u.s)
            lx[okz], lxe[okz] = lq.to_value(u.erg / u.s), le.to_value(u.erg / u.s)
        flag = np.where(good & ~okz & (flag == ""), "no luminosity: redshift missing or > 2",
                        flag)
        out["LX"] = lx * u.erg / u.s
        out["LX_err"] = lxe * u.erg / u.s
    elif need_z:
        log.info("measure_catalog: no redshift column, luminosities not computed")
    out["phot_flag"] = flag
    return out
