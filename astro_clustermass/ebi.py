"""Energy-band images (EBIs) of clusters from X-ray event lists.

An EBI is the cube of photons around one cluster that the CNN ensemble reads
(seed 000, sect. 2.3 and App. A):

1. photons in a square of ``npix`` x ``npix`` pixels of ``pixel_arcsec`` (300 x 4" =
   1200") centred on the cluster, in the tangent plane at the cluster position
   (gnomonic projection, the FITS ``TAN`` projection of `astropy.wcs`; RA increases
   to the left, ``CDELT1 < 0``);
2. binned in ``nbands`` equal energy bands over ``[emin_keV, emax_keV)`` (10 bands of
   205 eV over 0.25-2.30 keV), energy = ``PI / 1000`` keV (``PI`` in eV as in eSASS
   ``EVENTS``);
3. rebinned to ``rebin`` x ``rebin`` pixels (50 x 50 of 24"). The photons are binned
   directly in the rebinned pixels: the edges of the 24" pixels are edges of the 4"
   ones, so this is the same as binning at 4" and summing 6 x 6 blocks;
4. smoothed with the normalised 3-D Gaussian kernel of shape ``kernel_size``
   (3, 3, 11): ``exp(-((i/X)^2 + (j/Y)^2 + (k/Z)^2) / (2 sigma^2))`` with
   ``(X, Y, Z) = (kernel_size - 1) / 2 = (1, 1, 5)`` and ``sigma = kernel_sigma``
   (0.75), zero-padded at the borders, i.e. ``scipy.signal.convolve(h, kernel,
   mode='same')``. The kernel is a product of 1-D Gaussians, so the smoothing is done
   as three 1-D convolutions (`scipy.ndimage.convolve1d`, ``mode='constant'``), which
   is the same convolution;
5. clipped at ``clip`` (36) counts.

The cube is stored as ``(y, x, band)`` float32, shape ``(rebin, rebin, nbands)`` =
(50, 50, 10): the layout of the teaching data set and of the shipped CNN ensemble.
Pixel ``(y, x)`` has the centre given by `EnergyBandImage.wcs`; ``x`` grows towards the
west (decreasing RA), ``y`` towards the north.

Photons come from an `~astro_clustermass.io.events.EventList` (the package's one reader
of event files, with the eSASS quality cuts); stacks of EBIs on disk are
`astro_clustermass.io.ebi_stack`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .io.atomic import atomic_write
from .io.events import (  # noqa: F401
    _ARCSEC_PER_RAD,
    DEFAULT_FLAG_MASK,
    DEFAULT_PAT_TYP,
    EventList,
    _center_arrays,
    as_event_list,
)

__all__ = ["EBIParameters", "EnergyBandImage", "energy_band_image", "energy_band_images"]

#: Names that moved to `astro_clustermass.io.ebi_stack` (importable from here until 0.3).
_MOVED = {name: "astro_clustermass.io.ebi_stack" for name in (
    "EBIStack", "write_ebi_stack", "read_ebi_stack", "read_teaching_pickle",
    "convert_teaching_pickle", "STACK_FORMAT", "STACK_FORMAT_VERSION")}


def __getattr__(name):
    if name in _MOVED:
        import importlib
        import warnings

        from astropy.utils.exceptions import AstropyDeprecationWarning

        warnings.warn(f"astro_clustermass.ebi.{name} moved to {_MOVED[name]}.{name}",
                      AstropyDeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'astro_clustermass.ebi' has no attribute {name!r}")


# -- parameters -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class EBIParameters:
    """How energy-band images are made; defaults are seed 000's.

    Parameters
    ----------
    npix : int
        Side of the cut-out [fine pixels] (300).
    pixel_arcsec : float
        Fine pixel size [arcsec] (4).
    emin_keV, emax_keV : float
        Energy range [keV] of the bands (0.25, 2.30).
    nbands : int
        Number of equal energy bands (10).
    rebin : int
        Side of the rebinned image [pixels] (50); must divide ``npix``.
    kernel_size : tuple of 3 int
        Smoothing kernel shape (y, x, band), odd sizes ((3, 3, 11)).
    kernel_sigma : float
        Kernel sigma on the scaled offsets (0.75).
    clip : float or None
        Upper limit of the smoothed counts (36); None: no clipping.
    """

    npix: int = 300
    pixel_arcsec: float = 4.0
    emin_keV: float = 0.25
    emax_keV: float = 2.30
    nbands: int = 10
    rebin: int = 50
    kernel_size: tuple = (3, 3, 11)
    kernel_sigma: float = 0.75
    clip: float | None = 36.0

    def __post_init__(self):
        def setf(name, value):
            object.__setattr__(self, name, value)

        for name in ("npix", "nbands", "rebin"):
            v = getattr(self, name)
            if isinstance(v, bool) or not float(v).is_integer() or v < 1:
                raise ValueError(f"EBIParameters.{name} must be a positive integer; got {v!r}")
            setf(name, int(v))
        for name in ("pixel_arcsec", "emin_keV", "emax_keV", "kernel_sigma"):
            v = getattr(self, name)
            if hasattr(v, "unit"):
                raise TypeError(f"EBIParameters.{name} is a plain number in the unit its name "
                                f"says; got the Quantity {v!r}")
            v = float(v)
            if not math.isfinite(v):
                raise ValueError(f"EBIParameters.{name} must be finite; got {v!r}")
            setf(name, v)
        if self.pixel_arcsec <= 0 or self.kernel_sigma <= 0:
            raise ValueError("EBIParameters.pixel_arcsec and kernel_sigma must be > 0")
        if not 0 <= self.emin_keV < self.emax_keV:
            raise ValueError(f"EBIParameters needs 0 <= emin_keV < emax_keV; got "
                             f"{self.emin_keV}, {self.emax_keV}")
        if self.npix % self.rebin:
            raise ValueError(f"EBIParameters.rebin ({self.rebin}) must divide npix ({self.npix})")
        ks = tuple(int(k) for k in np.ravel(self.kernel_size))
        if len(ks) != 3 or any(k < 1 or k % 2 == 0 for k in ks):
            raise ValueError(f"EBIParameters.kernel_size must be 3 odd positive integers; "
                             f"got {self.kernel_size!r}")
        setf("kernel_size", ks)
        if self.clip is not None:
            c = float(self.clip)
            if not c > 0:
                raise ValueError(f"EBIParameters.clip must be > 0 or None; got {self.clip!r}")
            setf("clip", c)

    # -- (de)serialisation
    def to_dict(self):
        """Plain dict (YAML-able) with the keys of the CNN manifest's ``ebi_parameters``."""
        d = dataclasses.asdict(self)
        d["kernel_size"] = list(self.kernel_size)
        return d

    @classmethod
    def from_dict(cls, d):
        """Parameters from a dict such as `to_dict` gives; None: the defaults.

        Unknown keys raise a ValueError naming them.
        """
        if d is None:
            return cls()
        if isinstance(d, cls):
            return d
        if hasattr(d, "to_dict"):
            d = d.to_dict()
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown EBI parameter(s) {unknown}; known: {sorted(names)}")
        return cls(**dict(d))

    def replace(self, **changes):
        """A copy with some parameters changed."""
        return dataclasses.replace(self, **changes)

    # -- derived quantities
    @property
    def band_edges(self):
        """Band edges, `~astropy.units.Quantity` [keV], ``nbands + 1`` values."""
        import astropy.units as u

        return np.linspace(self.emin_keV, self.emax_keV, self.nbands + 1) * u.keV

    @property
    def band_width_keV(self):
        """Width of one band [keV] (float)."""
        return (self.emax_keV - self.emin_keV) / self.nbands

    @property
    def rebinned_pixel(self):
        """Pixel size of the rebinned image, `~astropy.units.Quantity` [arcsec] (24")."""
        import astropy.units as u

        return self.rebinned_pixel_arcsec * u.arcsec

    @property
    def rebinned_pixel_arcsec(self):
        return self.npix * self.pixel_arcsec / self.rebin

    @property
    def half_size_arcsec(self):
        """Half the side of the cut-out [arcsec] (600)."""
        return self.npix * self.pixel_arcsec / 2.0

    @property
    def image_shape(self):
        """Shape of one cube: ``(rebin, rebin, nbands)`` = (y, x, band)."""
        return (self.rebin, self.rebin, self.nbands)

    def kernel_1d(self, axis):
        """Normalised 1-D factor of the kernel along ``axis`` (0 = y, 1 = x, 2 = band)."""
        n = self.kernel_size[axis]
        half = (n - 1) // 2
        k = np.arange(-half, half + 1, dtype=float)
        scale = half if half > 0 else 1.0
        g = np.exp(-((k / scale) ** 2) / (2 * self.kernel_sigma ** 2))
        return g / g.sum()

    def kernel(self):
        """Normalised 3-D smoothing kernel, shape ``kernel_size``.

        ``exp(-((i/X)^2 + (j/Y)^2 + (k/Z)^2) / (2 sigma^2))`` / sum, with
        ``(X, Y, Z) = (kernel_size - 1) / 2``; it equals the outer product of
        `kernel_1d` of the three axes.
        """
        gy, gx, gb = (self.kernel_1d(a) for a in range(3))
        return gy[:, None, None] * gx[None, :, None] * gb[None, None, :]


def _params(params):
    return EBIParameters.from_dict(params)


# -- binning and smoothing --------------------------------------------------------------------
def _bin_batch(ev, ra0, dec0, p):
    """Counts cubes (B, ny, nx, nb) float32 and photons binned per cube."""
    ny = nx = p.rebin
    nb = p.nbands
    B = len(ra0)
    cells = ny * nx * nb
    q, da, dec, pi = ev.photons_around(ra0, dec0, p.half_size_arcsec)
    if len(q) == 0:
        return np.zeros((B, ny, nx, nb), np.float32), np.zeros(B, np.int64)
    dec = np.radians(dec)
    sd, cd = np.sin(dec), np.cos(dec)
    del dec
    d0 = np.radians(dec0)
    sd0, cd0 = np.sin(d0)[q], np.cos(d0)[q]
    cda = np.cos(da)
    sda = np.sin(da, out=da)
    cdcda = cd * cda
    cosc = sd0 * sd + cd0 * cdcda
    scale = _ARCSEC_PER_RAD / p.rebinned_pixel_arcsec
    # band index in eV, float64: band edges such as 250 + 205 k eV are exact
    band = pi.astype(np.float64)
    band -= p.emin_keV * 1e3
    band /= p.band_width_keV * 1e3
    with np.errstate(divide="ignore", invalid="ignore"):
        f = scale / cosc
        u = cd * sda
        u *= -f
        u += nx / 2.0                              # x grows to the west
        v = cd0 * sd
        v -= sd0 * cdcda
        v *= f
        v += ny / 2.0
        ok = (cosc > 0) & (u >= 0) & (u < nx) & (v >= 0) & (v < ny) & (band >= 0) & (band < nb)
        flat = q * cells
        flat += v.astype(np.int64) * (nx * nb)
        flat += u.astype(np.int64) * nb
        flat += band.astype(np.int64)
    flat[~ok] = B * cells  # one spare cell for everything outside
    counts = np.bincount(flat, minlength=B * cells + 1)[:-1].astype(np.float32)
    n_ph = np.bincount(q[ok], minlength=B)
    return counts.reshape(B, ny, nx, nb), n_ph


def _conv_axis(x, g, axis):
    """Zero-padded 'same' convolution of ``x`` along ``axis`` with the symmetric odd
    kernel ``g`` (float32, modifies and returns ``x``)."""
    h = len(g) // 2
    n = x.shape[axis]
    if h == 0:
        return x
    x = np.moveaxis(x, axis, 0)
    t = np.zeros_like(x)
    acc = np.empty_like(x)
    for d in range(1, min(h, n - 1) + 1):
        # t = x shifted by +d plus x shifted by -d (zeros beyond the edges)
        t[:] = 0
        t[d:] += x[:-d]
        t[:-d] += x[d:]
        if d == 1:
            np.multiply(t, g[h + 1], out=acc)
        else:
            acc += g[h + d] * t
    if n > 1:
        x *= g[h]
        x += acc
    else:
        x *= g[h]
    return np.moveaxis(x, 0, axis)


def _band_matrix(p):
    g = p.kernel_1d(2)
    h = len(g) // 2
    nb = p.nbands
    i = np.arange(nb)
    d = i[None, :] - i[:, None]
    m = np.where(np.abs(d) <= h, g[np.clip(d + h, 0, len(g) - 1)], 0.0)
    return m.astype(np.float32)


def smooth_and_clip(cubes, params=None):
    """Smooth counts cubes (..., ny, nx, nbands) with the EBI kernel and clip.

    Equal (to float32 rounding) to ``scipy.signal.convolve(cube, params.kernel(),
    mode='same')`` followed by clipping at ``params.clip``: the kernel is separable,
    so the smoothing is a banded matrix product along the bands and 1-D zero-padded
    convolutions along y and x. Returns float32 (a new array).
    """
    p = _params(params)
    x = np.array(cubes, dtype=np.float32)
    if x.ndim < 3 or x.shape[-3:] != p.image_shape:
        raise ValueError(f"cubes must be (..., {p.rebin}, {p.rebin}, {p.nbands}); got shape "
                         f"{x.shape}")
    shape = x.shape
    if p.kernel_size[2] > 1:
        x = (x.reshape(-1, p.nbands) @ _band_matrix(p)).reshape(shape)
    x = x.reshape(-1, *p.image_shape)
    for axis in (0, 1):
        x = _conv_axis(x, p.kernel_1d(axis).astype(np.float32), axis + 1)
    x = x.reshape(shape)
    if p.clip is not None:
        np.clip(x, 0.0, p.clip, out=x)
    return np.ascontiguousarray(x)


def ebi_wcs(center, params=None):
    """Celestial `~astropy.wcs.WCS` of the rebinned grid (TAN at ``center``, RA to the left).

    Pixel ``(x, y)`` (0-based) of this WCS is element ``[y, x, :]`` of the cube.
    """
    from astropy.wcs import WCS

    p = _params(params)
    ra, dec = _center_arrays(center)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.crval = [float(ra[0]), float(dec[0])]
    w.wcs.crpix = [(p.rebin + 1) / 2.0, (p.rebin + 1) / 2.0]
    d = p.rebinned_pixel_arcsec / 3600.0
    w.wcs.cdelt = [-d, d]
    w.wcs.radesys = "ICRS"
    w.wcs.set()
    w.pixel_shape = (p.rebin, p.rebin)
    return w


# -- single images ----------------------------------------------------------------------------
@dataclasses.dataclass
class EnergyBandImage:
    """One cluster's EBI.

    Attributes
    ----------
    data : ndarray (ny, nx, nbands) float32
        Smoothed, clipped counts; axes (y, x, band).
    counts : ndarray (ny, nx, nbands) float32
        The binned counts before smoothing.
    center : `~astropy.coordinates.SkyCoord`
    params : EBIParameters
    n_photons : int
        Photons binned in the cube (before smoothing).

    FITS layout written by `write_fits` (primary HDU, float32 image): FITS axes
    ``NAXIS1 = x``, ``NAXIS2 = y``, ``NAXIS3 = band`` (numpy shape (nbands, ny, nx));
    WCS: ``RA---TAN``/``DEC--TAN`` at the cluster (``CDELT1 < 0``) and a linear third
    axis ``ENERGY`` [keV] at the band centres; ``BUNIT = 'count'``; the EBI parameters
    as keywords ``EBI_NPIX``, ``EBI_PIX``, ``EBI_EMIN``, ``EBI_EMAX``, ``EBI_NBND``,
    ``EBI_REBN``, ``EBI_KSZ1..3``, ``EBI_KSIG``, ``EBI_CLIP``; ``NPHOTONS``. Extension
    ``BANDS``: table ``E_MIN``, ``E_MAX`` [keV]. `read_fits` reads it back.
    """

    data: np.ndarray
    center: object
    params: EBIParameters
    counts: np.ndarray | None = None
    n_photons: int = 0

    @property
    def cube(self):
        return self.data

    @property
    def wcs(self):
        """Celestial WCS of the (y, x) grid (see `ebi_wcs`)."""
        return ebi_wcs(self.center, self.params)

    @property
    def band_edges(self):
        return self.params.band_edges

    def wcs3d(self):
        """3-D WCS (x, y, energy [keV]) of the FITS layout."""
        from astropy.wcs import WCS

        p = self.params
        c = self.wcs
        w = WCS(naxis=3)
        w.wcs.ctype = [c.wcs.ctype[0], c.wcs.ctype[1], "ENERGY"]
        w.wcs.cunit = ["deg", "deg", "keV"]
        w.wcs.crval = [c.wcs.crval[0], c.wcs.crval[1], p.emin_keV + p.band_width_keV / 2]
        w.wcs.crpix = [c.wcs.crpix[0], c.wcs.crpix[1], 1.0]
        w.wcs.cdelt = [c.wcs.cdelt[0], c.wcs.cdelt[1], p.band_width_keV]
        w.wcs.radesys = "ICRS"
        w.wcs.set()
        return w

    def header(self):
        p = self.params
        h = self.wcs3d().to_header()
        h["BUNIT"] = "count"
        for k, v in (("EBI_NPIX", p.npix), ("EBI_PIX", p.pixel_arcsec), ("EBI_EMIN", p.emin_keV),
                     ("EBI_EMAX", p.emax_keV), ("EBI_NBND", p.nbands), ("EBI_REBN", p.rebin),
                     ("EBI_KSZ1", p.kernel_size[0]), ("EBI_KSZ2", p.kernel_size[1]),
                     ("EBI_KSZ3", p.kernel_size[2]), ("EBI_KSIG", p.kernel_sigma),
                     ("EBI_CLIP", -1.0 if p.clip is None else p.clip),
                     ("NPHOTONS", int(self.n_photons))):
            h[k] = v
        h["COMMENT"] = "astro_clustermass energy-band image: smoothed, clipped counts"
        return h

    def write_fits(self, path, overwrite=False):
        """Write the cube (layout in the class docstring) atomically."""
        from astropy.io import fits
        from astropy.table import Table

        edges = self.params.band_edges.value
        bands = fits.table_to_hdu(Table({"E_MIN": edges[:-1], "E_MAX": edges[1:]},
                                        units={"E_MIN": "keV", "E_MAX": "keV"}))
        bands.name = "BANDS"
        prim = fits.PrimaryHDU(np.ascontiguousarray(np.moveaxis(self.data, -1, 0),
                                                    dtype=np.float32), header=self.header())
        atomic_write(path, lambda tmp: fits.HDUList([prim, bands]).writeto(tmp, overwrite=True),
                     overwrite=overwrite, suffix=".fits")

    @classmethod
    def read_fits(cls, path):
        """Read an image written by `write_fits`."""
        import astropy.units as u
        from astropy.coordinates import SkyCoord
        from astropy.io import fits

        with fits.open(path) as hdul:
            h = hdul[0].header
            data = np.moveaxis(np.asarray(hdul[0].data, np.float32), 0, -1).copy()
        clip = h["EBI_CLIP"]
        p = EBIParameters(npix=h["EBI_NPIX"], pixel_arcsec=h["EBI_PIX"], emin_keV=h["EBI_EMIN"],
                          emax_keV=h["EBI_EMAX"], nbands=h["EBI_NBND"], rebin=h["EBI_REBN"],
                          kernel_size=(h["EBI_KSZ1"], h["EBI_KSZ2"], h["EBI_KSZ3"]),
                          kernel_sigma=h["EBI_KSIG"], clip=None if clip < 0 else clip)
        center = SkyCoord(h["CRVAL1"] * u.deg, h["CRVAL2"] * u.deg)
        return cls(data=data, center=center, params=p, n_photons=int(h.get("NPHOTONS", 0)))


def energy_band_image(events, center, params=None):
    """The EBI of one cluster.

    Parameters
    ----------
    events : EventList, `~astropy.table.Table` or event-file path(s)
    center : `~astropy.coordinates.SkyCoord` (scalar)
    params : EBIParameters or dict, optional
        Default: seed 000's.

    Returns
    -------
    EnergyBandImage
    """
    p = _params(params)
    ev = as_event_list(events)
    ra, dec = _center_arrays(center)
    if ra.size != 1:
        raise ValueError("energy_band_image takes one centre; use energy_band_images for many")
    counts, n_ph = _bin_batch(ev, ra, dec, p)
    data = smooth_and_clip(counts, p)[0]
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    return EnergyBandImage(data=data, center=SkyCoord(ra[0] * u.deg, dec[0] * u.deg), params=p,
                           counts=counts[0], n_photons=int(n_ph[0]))


def energy_band_images(events, centers, params=None, progress=None, batch_size=64,
                       out=None):
    """EBIs of many clusters, float32 array (N, ny, nx, nbands).

    Parameters
    ----------
    events : EventList, `~astropy.table.Table` or event-file path(s)
        Build the `EventList` once and pass it when calling this several times.
    centers : `~astropy.coordinates.SkyCoord`
        Cluster positions (any frame; converted to ICRS). Non-finite positions raise
        a ValueError naming them.
    params : EBIParameters or dict, optional
    progress : bool, optional
        tqdm progress bar; default: on for more than 20,000 clusters.
    batch_size : int
        Clusters binned and smoothed together (memory ~ batch_size x 0.2 MB).
    out : array-like (N, ny, nx, nbands), optional
        Where to write (e.g. an HDF5 data set or a memory map); returned.
    """
    p = _params(params)
    ev = as_event_list(events)
    ra, dec = _center_arrays(centers)
    n = ra.size
    if out is None:
        out = np.empty((n, *p.image_shape), np.float32)
    elif tuple(out.shape) != (n, *p.image_shape):
        raise ValueError(f"out has shape {tuple(out.shape)}; need {(n, *p.image_shape)}")
    if progress is None:
        progress = n > 20_000
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="energy-band images", unit="EBI")
    batch_size = max(1, int(batch_size))
    try:
        for s in range(0, n, batch_size):
            e = min(n, s + batch_size)
            counts, _ = _bin_batch(ev, ra[s:e], dec[s:e], p)
            out[s:e] = smooth_and_clip(counts, p)
            if bar is not None:
                bar.update(e - s)
    finally:
        if bar is not None:
            bar.close()
    return out
