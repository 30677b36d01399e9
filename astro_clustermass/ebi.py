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
(50, 50, 10): the layout of the teaching data set and of the shipped CNN ensemble
(`astro_clustermass.cnn.interim_sim.ebi_from_photons`). Pixel ``(y, x)`` has the
centre given by `EnergyBandImage.wcs`; ``x`` grows towards the west (decreasing RA),
``y`` towards the north.

Event lists (`EventList`) hold RA, DEC [deg] and PI [eV] of the photons, sorted by a
spatial index (declination strips of ``strip_deg``, RA within each strip) so that the
photons of one cluster are found with a few binary searches: the cost per cluster
does not depend on the total number of photons. Event files are read in row chunks
from memory-mapped FITS; an index larger than memory is built on disk (``memmap``)
strip group by strip group.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
import weakref

import numpy as np

__all__ = ["EBIParameters", "EventList", "EnergyBandImage", "EBIStack",
           "energy_band_image", "energy_band_images", "write_ebi_stack", "read_ebi_stack",
           "read_teaching_pickle", "convert_teaching_pickle", "DEFAULT_FLAG_MASK",
           "DEFAULT_PAT_TYP", "STACK_FORMAT", "STACK_FORMAT_VERSION"]

log = logging.getLogger("astro_clustermass.ebi")

#: eSASS ``evtool`` flag mask used for eROSITA imaging analyses (``flag=0xc00fff30``):
#: events with any of these FLAG bits set are rejected.
DEFAULT_FLAG_MASK = 0xC00FFF30
#: Valid eSASS pattern types kept (``evtool pattern=15``: singles, doubles, triples,
#: quadruples, i.e. ``PAT_TYP`` 1-4; 0 and negative values are invalid patterns).
DEFAULT_PAT_TYP = (1, 2, 3, 4)

STACK_FORMAT = "astro_clustermass-ebi-stack"
STACK_FORMAT_VERSION = 1

_ARCSEC_PER_RAD = 180.0 / math.pi * 3600.0
_STRIP_RA_WIDTH = 400.0  # key = strip * 400 + RA: RA in [0, 360) never reaches the next strip


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


# -- event lists ------------------------------------------------------------------------------
def _find_column(names, wanted):
    upper = {n.upper(): n for n in names if isinstance(n, str)}
    return upper.get(wanted.upper())


def _as_float(values, unit, to_unit, what, source):
    """Values (optionally with unit) converted to ``to_unit``; clear error otherwise."""
    import astropy.units as u

    vals = getattr(values, "value", values)
    unit = getattr(values, "unit", None) or unit
    arr = np.asarray(vals)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{source}: column {what} must be numeric; got dtype {arr.dtype}")
    arr = arr.astype(float, copy=False)
    if unit is not None and str(unit).strip() not in ("", "None"):
        try:
            unit = u.Unit(unit)
            if unit != to_unit:
                arr = (arr * unit).to_value(to_unit)
        except (ValueError, u.UnitConversionError) as exc:
            raise u.UnitConversionError(
                f"{source}: column {what} has unit {unit!s}, which is not convertible to "
                f"{to_unit!s}") from exc
    return arr


def _quality_mask(cols, flag_mask, pat_typ, source):
    """Rows passing the eSASS quality cuts (columns only used when present)."""
    ok = None
    rejected = {}
    if flag_mask is not None and cols.get("FLAG") is not None:
        flag = np.asarray(cols["FLAG"]).astype(np.int64) & 0xFFFFFFFF
        good = (flag & int(flag_mask)) == 0
        rejected["FLAG"] = int((~good).sum())
        ok = good
    if pat_typ is not None and cols.get("PAT_TYP") is not None:
        good = np.isin(np.asarray(cols["PAT_TYP"]), np.asarray(pat_typ))
        rejected["PAT_TYP"] = int(((~good) & (ok if ok is not None else True)).sum())
        ok = good if ok is None else ok & good
    return ok, rejected


def _chunk_arrays(cols, units, flag_mask, pat_typ, source, keep_time):
    """Filtered (ra, dec, pi[, time]) of one chunk and the rejection counts."""
    import astropy.units as u

    ra = _as_float(cols["RA"], units.get("RA"), u.deg, "RA", source)
    dec = _as_float(cols["DEC"], units.get("DEC"), u.deg, "DEC", source)
    pi = _as_float(cols["PI"], units.get("PI"), u.eV, "PI", source)
    ok, rejected = _quality_mask(cols, flag_mask, pat_typ, source)
    finite = np.isfinite(ra) & np.isfinite(dec) & np.isfinite(pi) & (np.abs(dec) <= 90)
    base = finite if ok is None else ok & finite
    # each rejected row is counted once, under the first cut it fails (FLAG, PAT_TYP,
    # non-finite, PI <= 0): the counts add up to the rows dropped
    rejected["non-finite"] = int((~finite & (True if ok is None else ok)).sum())
    pos = pi > 0  # eSASS: negative PI for the secondary pixels of a pattern
    rejected["PI <= 0"] = int((base & ~pos).sum())
    keep = base & pos
    out = [np.mod(ra[keep], 360.0), dec[keep], pi[keep].astype(np.float32)]
    if keep_time:
        t = cols.get("TIME")
        out.append(np.asarray(t, float)[keep] if t is not None else None)
    return out, rejected


#: What astropy raises on a damaged FITS file once it is open (unparsable cards, data
#: shorter than the header says, ...); turned into an OSError naming the file.
try:
    from astropy.io.fits.verify import VerifyError as _VerifyError
except ImportError:  # pragma: no cover
    _VerifyError = ValueError
_CORRUPT_ERRORS = (ValueError, TypeError, AttributeError, IndexError, KeyError, EOFError,
                   _VerifyError)


def _corrupt(path, exc):
    return OSError(f"event file {path!r} is corrupt or truncated ({type(exc).__name__}: "
                   f"{exc})")


class _FileSource:
    """Row chunks of the EVENTS extension of FITS files (memory-mapped)."""

    def __init__(self, paths, hdu, chunk_rows):
        self.paths = [os.fspath(p) for p in paths]
        self.hdu = hdu
        self.chunk_rows = int(chunk_rows)
        self.n_rows = 0
        for p in self.paths:
            if not os.path.exists(p):
                raise FileNotFoundError(f"event file {p!r} does not exist")
            with self._open(p) as (h, _):
                try:
                    self.n_rows += int(h.header.get("NAXIS2", 0))
                except _CORRUPT_ERRORS as exc:
                    raise _corrupt(p, exc) from exc

    def _open(self, path):
        from contextlib import contextmanager

        from astropy.io import fits

        @contextmanager
        def ctx():
            try:
                hdul = fits.open(path, memmap=True)
            except Exception as exc:  # astropy raises many types on damaged headers
                raise OSError(f"cannot read event file {path!r} as FITS ({type(exc).__name__}: "
                              f"{exc})") from exc
            try:
                try:
                    if self.hdu is not None:
                        try:
                            h = hdul[self.hdu]
                        except (KeyError, IndexError) as exc:
                            raise OSError(f"event file {path!r} has no extension {self.hdu!r} "
                                          f"({len(hdul)} HDUs)") from exc
                    elif "EVENTS" in hdul:
                        h = hdul["EVENTS"]
                    else:
                        h = next((x for x in hdul if isinstance(x, fits.BinTableHDU)), None)
                        if h is None:
                            raise OSError(f"event file {path!r} has no EVENTS (or other table) "
                                          "extension")
                    names = list(h.columns.names) if hasattr(h, "columns") else []
                except OSError as exc:  # astropy reads headers lazily: damage shows up here
                    if os.fspath(path) in str(exc):
                        raise
                    raise _corrupt(path, exc) from exc
                except _CORRUPT_ERRORS as exc:
                    raise _corrupt(path, exc) from exc
                for need in ("RA", "DEC", "PI"):
                    if _find_column(names, need) is None:
                        raise KeyError(f"event file {path!r}, extension {h.name}: no {need} "
                                       f"column (columns: {', '.join(map(str, names))})")
                yield h, names
            finally:
                hdul.close()

        return ctx()

    def chunks(self, wanted):
        """Yield (dict name -> array for ``wanted`` present, units, source) per row chunk."""
        for p in self.paths:
            with self._open(p) as (h, names):
                try:
                    n = int(h.header.get("NAXIS2", 0))
                    present = {w: _find_column(names, w) for w in wanted}
                    units = {w: h.columns[c].unit for w, c in present.items() if c is not None}
                except _CORRUPT_ERRORS as exc:
                    raise _corrupt(p, exc) from exc
                for start in range(0, n, self.chunk_rows):
                    try:
                        rows = h.data[start:start + self.chunk_rows]
                        cols = {w: (np.asarray(rows.field(c)) if c is not None else None)
                                for w, c in present.items()}
                    except _CORRUPT_ERRORS + (OSError,) as exc:
                        raise _corrupt(p, exc) from exc
                    yield cols, units, f"event file {p!r}"
                    del rows, cols


class _TableSource:
    """Row chunks of an in-memory table."""

    def __init__(self, table, chunk_rows):
        self.table = table
        self.chunk_rows = int(chunk_rows)
        self.n_rows = len(table)
        names = list(table.colnames)
        for need in ("RA", "DEC", "PI"):
            if _find_column(names, need) is None:
                raise KeyError(f"event table: no {need} column (columns: {', '.join(names)})")

    def chunks(self, wanted):
        names = list(self.table.colnames)
        present = {w: _find_column(names, w) for w in wanted}
        units = {w: getattr(self.table[c], "unit", None)
                 for w, c in present.items() if c is not None}
        for start in range(0, max(self.n_rows, 1), self.chunk_rows):
            cols = {}
            for w, c in present.items():
                if c is None:
                    cols[w] = None
                    continue
                col = self.table[c][start:start + self.chunk_rows]
                mask = getattr(col, "mask", None)
                vals = np.asarray(getattr(col, "value", col))
                if mask is not None and np.any(mask) and w in ("RA", "DEC", "PI"):
                    vals = np.where(np.asarray(mask), np.nan, vals.astype(float))
                cols[w] = vals
            yield cols, units, "event table"


class EventList:
    """Photons (RA, DEC [deg], PI [eV]) with a spatial index for cut-outs.

    Build one from an `~astropy.table.Table` (``EventList(table)``, columns ``RA``,
    ``DEC`` in deg and ``PI`` in eV; units, when the columns carry them, are converted)
    or from eSASS event files with `EventList.read`.

    Quality cuts, applied when the columns exist (eSASS conventions; document these in
    any analysis):

    - ``FLAG``: rows with any bit of ``flag_mask`` set are dropped (default
      `DEFAULT_FLAG_MASK` = ``0xC00FFF30``, the ``evtool flag=0xc00fff30`` of eROSITA
      imaging analyses); ``flag_mask=None`` keeps all;
    - ``PAT_TYP``: only valid patterns ``pat_typ`` (default 1-4, ``evtool pattern=15``);
      ``pat_typ=None`` keeps all;
    - ``PI <= 0`` (secondary pixels of a pattern in eSASS) and non-finite RA, DEC, PI
      are always dropped.

    Photons are kept in index order (sorted by declination strip, then RA); `ra`,
    `dec`, `pi` give them in that order.

    Parameters
    ----------
    table : `~astropy.table.Table`
    flag_mask : int or None
    pat_typ : sequence of int or None
    strip_deg : float
        Height of the declination strips of the index [deg].
    deduplicate : bool
        Drop exact duplicate photons (same RA, DEC, PI and TIME; needs a TIME column).
    """

    def __init__(self, table=None, *, flag_mask=DEFAULT_FLAG_MASK, pat_typ=DEFAULT_PAT_TYP,
                 strip_deg=0.05, deduplicate=False, _source=None, memmap=False,
                 index_dir=None, group_rows=None):
        if _source is None:
            if table is None:
                raise TypeError("EventList needs a table (or use EventList.read(paths))")
            if isinstance(table, EventList):
                raise TypeError("already an EventList")
            if not hasattr(table, "colnames"):
                from astropy.table import Table

                try:
                    table = Table(table)
                except Exception as exc:
                    raise TypeError(f"EventList needs an astropy Table with RA, DEC, PI; got "
                                    f"{type(table).__name__}") from exc
            _source = _TableSource(table, chunk_rows=max(len(table), 1))
        self.flag_mask = flag_mask
        self.pat_typ = None if pat_typ is None else tuple(int(p) for p in pat_typ)
        self.strip_deg = float(strip_deg)
        if not 0 < self.strip_deg <= 10:
            raise ValueError(f"strip_deg must be in (0, 10]; got {strip_deg!r}")
        self.n_strips = int(math.ceil(180.0 / self.strip_deg)) + 1
        self.deduplicate = bool(deduplicate)
        self.files = list(getattr(_source, "paths", []))
        self.rejected = {}
        self.n_duplicates = 0
        self._tmpdir = None
        self._build(_source, memmap, index_dir, group_rows)

    # -- constructors
    @classmethod
    def from_table(cls, table, **kwargs):
        """Same as ``EventList(table, **kwargs)``."""
        return cls(table, **kwargs)

    @classmethod
    def read(cls, paths, *, hdu=None, chunk_rows=1_000_000, flag_mask=DEFAULT_FLAG_MASK,
             pat_typ=DEFAULT_PAT_TYP, strip_deg=0.05, deduplicate=None, memmap=None,
             index_dir=None, max_memory_rows=50_000_000):
        """Read the photons of one or several eSASS event files.

        Parameters
        ----------
        paths : path-like or sequence of path-like
            FITS files with an ``EVENTS`` extension (else the first table) holding RA,
            DEC [deg] and PI [eV]. Several files are merged: a cluster near a tile edge
            gets the photons of every file that covers it.
        hdu : int or str, optional
            Extension to read instead of ``EVENTS``.
        chunk_rows : int
            Rows read at a time (the files are memory-mapped; peak memory of the reading
            is about ``chunk_rows`` x the row size, plus the index).
        flag_mask, pat_typ, strip_deg
            See `EventList`.
        deduplicate : bool, optional
            Drop photons present in more than one file (eRASS sky tiles overlap by about
            20'), recognised as equal RA, DEC, PI and TIME. Default: True when several
            files are given and they have a TIME column.
        memmap : bool, optional
            Keep the index in files under ``index_dir`` (memory-mapped) instead of in
            memory. Default: when the files hold more than ``max_memory_rows`` rows.
            The index is then built strip group by strip group, two passes over the
            files, with peak memory about ``chunk_rows`` plus one group.
        index_dir : str, optional
            Where the memory-mapped index goes (default: a temporary directory removed
            with the EventList).
        max_memory_rows : int
            See ``memmap``.
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        paths = list(paths)
        if not paths:
            raise ValueError("EventList.read needs at least one event file")
        src = _FileSource(paths, hdu, chunk_rows)
        if deduplicate is None:
            deduplicate = len(paths) > 1
        if memmap is None:
            memmap = src.n_rows > max_memory_rows
        return cls(None, flag_mask=flag_mask, pat_typ=pat_typ, strip_deg=strip_deg,
                   deduplicate=deduplicate, _source=src, memmap=memmap, index_dir=index_dir,
                   group_rows=max(4 * int(chunk_rows), 1))

    # -- index construction
    def _strip_of(self, dec):
        return np.floor((np.asarray(dec, float) + 90.0) / self.strip_deg).astype(np.int64)

    def _key(self, ra, dec):
        return self._strip_of(dec) * _STRIP_RA_WIDTH + ra

    def _count(self, rejected):
        for k, v in rejected.items():
            self.rejected[k] = self.rejected.get(k, 0) + v

    def _filtered_chunks(self, source, keep_time):
        wanted = ("RA", "DEC", "PI", "FLAG", "PAT_TYP") + (("TIME",) if keep_time else ())
        for cols, units, where in source.chunks(wanted):
            if keep_time and cols.get("TIME") is None:
                if self.deduplicate:
                    log.warning("%s has no TIME column: duplicates between files cannot be "
                                "recognised and are kept", where)
                self.deduplicate = False
                keep_time = False
            arrays, rejected = _chunk_arrays(cols, units, self.flag_mask, self.pat_typ, where,
                                             keep_time)
            self._count(rejected)
            yield arrays

    def _sort_group(self, key, dec, pi, time):
        """Order of one group (sorted by key; ties broken so duplicates are adjacent)
        and the mask of rows kept after de-duplication."""
        if self.deduplicate and time is not None:
            order = np.lexsort((time, pi, dec, key))
            k, d, p, t = key[order], dec[order], pi[order], time[order]
            dup = np.zeros(len(order), bool)
            if len(order) > 1:
                dup[1:] = (k[1:] == k[:-1]) & (d[1:] == d[:-1]) & (p[1:] == p[:-1]) & \
                          (t[1:] == t[:-1])
            return order, ~dup
        return np.argsort(key, kind="stable"), None

    def _build(self, source, memmap, index_dir, group_rows):
        keep_time = self.deduplicate
        if not memmap:
            parts = list(self._filtered_chunks(source, keep_time))
            ra = np.concatenate([p[0] for p in parts]) if parts else np.empty(0)
            dec = np.concatenate([p[1] for p in parts]) if parts else np.empty(0)
            pi = np.concatenate([p[2] for p in parts]) if parts else np.empty(0, np.float32)
            time = None
            if self.deduplicate and parts and all(len(p) > 3 and p[3] is not None
                                                  for p in parts):
                time = np.concatenate([p[3] for p in parts])
            del parts
            key = self._key(ra, dec)
            del ra
            order, keep = self._sort_group(key, dec, pi, time)
            if keep is not None:
                order = order[keep]
                self.n_duplicates = int((~keep).sum())
            self._keys = key[order]
            self._dec = dec[order]
            self._pi = pi[order]
            del key, dec, pi, order
        else:
            self._build_memmap(source, index_dir, group_rows, keep_time)
        self._strip_start = np.searchsorted(
            self._keys, np.arange(self.n_strips + 1) * _STRIP_RA_WIDTH)

    def _build_memmap(self, source, index_dir, group_rows, keep_time):
        # pass 1: photons per declination strip
        counts = np.zeros(self.n_strips, np.int64)
        for arrays in self._filtered_chunks(source, False):
            counts += np.bincount(self._strip_of(arrays[1]), minlength=self.n_strips)
        self.rejected = {}
        # strip groups of at most ~group_rows photons (a larger strip is its own group)
        group_of = np.empty(self.n_strips, np.int64)
        g, acc = 0, 0
        for s in range(self.n_strips):
            if acc and acc + counts[s] > group_rows:
                g, acc = g + 1, 0
            group_of[s] = g
            acc += counts[s]
        n_groups = g + 1
        gcount = np.bincount(group_of, weights=counts, minlength=n_groups).astype(np.int64)
        gstart = np.concatenate([[0], np.cumsum(gcount)])
        total = int(gstart[-1])
        if index_dir is None:
            index_dir = self._tmpdir = tempfile.mkdtemp(prefix="acm_ebi_index_")
            weakref.finalize(self, _remove_dir, index_dir)
        os.makedirs(index_dir, exist_ok=True)

        def mm(name, dtype):
            return np.lib.format.open_memmap(os.path.join(index_dir, name), mode="w+",
                                             dtype=dtype, shape=(max(total, 1),))

        key, dec, pi = mm("key.npy", np.float64), mm("dec.npy", np.float64), \
            mm("pi.npy", np.float32)
        time = mm("time.npy", np.float64) if keep_time else None
        # pass 2: scatter every chunk into its group's region
        ptr = gstart[:-1].copy()
        for arrays in self._filtered_chunks(source, keep_time):
            ra_c, dec_c, pi_c = arrays[:3]
            t_c = arrays[3] if keep_time and len(arrays) > 3 else None
            if t_c is None and time is not None and len(ra_c):
                time = None
            k_c = self._key(ra_c, dec_c)
            grp = group_of[self._strip_of(dec_c)]
            order = np.argsort(grp, kind="stable")
            grp = grp[order]
            bounds = np.searchsorted(grp, np.arange(n_groups + 1))
            for gi in np.nonzero(np.diff(bounds))[0]:
                sl = order[bounds[gi]:bounds[gi + 1]]
                a, b = ptr[gi], ptr[gi] + len(sl)
                key[a:b], dec[a:b], pi[a:b] = k_c[sl], dec_c[sl], pi_c[sl]
                if time is not None:
                    time[a:b] = t_c[sl]
                ptr[gi] = b
        # pass 3: sort every group in memory; compact in place when duplicates go
        out = 0
        for gi in range(n_groups):
            a, b = gstart[gi], gstart[gi + 1]
            if b == a:
                continue
            kg, dg, pg = np.array(key[a:b]), np.array(dec[a:b]), np.array(pi[a:b])
            tg = np.array(time[a:b]) if time is not None else None
            order, keep = self._sort_group(kg, dg, pg, tg)
            if keep is not None:
                self.n_duplicates += int((~keep).sum())
                order = order[keep]
            n = len(order)
            key[out:out + n], dec[out:out + n], pi[out:out + n] = kg[order], dg[order], pg[order]
            out += n
        for a in (key, dec, pi):
            a.flush()
        self._keys, self._dec, self._pi = key[:out], dec[:out], pi[:out]
        if time is not None:
            del time
            try:
                os.remove(os.path.join(index_dir, "time.npy"))
            except OSError:
                pass
        self.index_dir = index_dir

    # -- access
    def __len__(self):
        return len(self._keys)

    def __repr__(self):
        where = f", {len(self.files)} file(s)" if self.files else ""
        return f"<EventList {len(self)} photons{where}>"

    @property
    def ra(self):
        """RA [deg] of the photons (index order)."""
        return self._keys - self._strip_of(self._dec) * _STRIP_RA_WIDTH

    @property
    def dec(self):
        """Dec [deg] of the photons (index order)."""
        return self._dec

    @property
    def pi(self):
        """PI [eV] of the photons (index order)."""
        return self._pi

    @property
    def energy(self):
        """Photon energies, `~astropy.units.Quantity` [keV] (``PI / 1000``)."""
        import astropy.units as u

        return np.asarray(self._pi, float) / 1000.0 * u.keV

    # -- queries
    def _ranges(self, ra0, dec0, half_arcsec):
        """Index ranges (start, stop, query id, strip key offset) holding every photon whose tangent-plane
        offsets from (ra0, dec0) [deg, arrays] are within +-half_arcsec."""
        ra0 = np.asarray(ra0, float)
        dec0 = np.asarray(dec0, float)
        t = half_arcsec / _ARCSEC_PER_RAD
        # sky positions of the square's corners and edge midpoints: the square's
        # declination extremes are among them (edges are great-circle arcs, symmetric
        # about the central meridian) and its RA extremes are at the corners.
        xs = np.array([-t, 0, t, -t, t, -t, 0, t])
        ys = np.array([-t, -t, -t, 0, 0, t, t, t])
        d0 = np.radians(dec0)[:, None]
        sd0, cd0 = np.sin(d0), np.cos(d0)
        den = cd0 - ys * sd0
        dec_pts = np.degrees(np.arctan2(sd0 + ys * cd0, np.hypot(xs, den)))
        dra = np.degrees(np.arctan2(xs, den))
        margin = 1e-6 + 2e-3 * half_arcsec / 3600.0
        dmin = dec_pts.min(axis=1) - margin
        dmax = dec_pts.max(axis=1) + margin
        pole = (den <= 0).any(axis=1)  # a celestial pole is in (or beyond) the square
        dmax = np.where(pole & (dec0 > 0), 90.0, dmax)
        dmin = np.where(pole & (dec0 <= 0), -90.0, dmin)
        full = pole | (dmax >= 90) | (dmin <= -90)
        dra_max = np.abs(dra).max(axis=1) + margin
        full |= dra_max >= 180
        s_lo = np.clip(self._strip_of(np.maximum(dmin, -90)), 0, self.n_strips - 1)
        s_hi = np.clip(self._strip_of(np.minimum(dmax, 90)), 0, self.n_strips - 1)
        nst = s_hi - s_lo + 1
        qid = np.repeat(np.arange(len(ra0)), nst)
        strip = np.repeat(s_lo, nst) + (np.arange(nst.sum()) - np.repeat(np.cumsum(nst) - nst,
                                                                         nst))
        lo = np.mod(ra0 - dra_max, 360.0)[qid]
        hi = np.mod(ra0 + dra_max, 360.0)[qid]
        f = full[qid]
        wrap = ~f & (lo > hi)
        base = strip * _STRIP_RA_WIDTH
        # [lo, hi] (or [0, 360) when full) and, when wrapping, [0, hi] + [lo, 360)
        a_lo = np.where(f | wrap, 0.0, lo)
        a_hi = np.where(f, 360.0, hi)
        starts = [np.searchsorted(self._keys, base + a_lo, "left")]
        stops = [np.searchsorted(self._keys, base + a_hi, "right")]
        qids, bases = [qid], [base]
        if wrap.any():
            w = np.nonzero(wrap)[0]
            starts.append(np.searchsorted(self._keys, base[w] + lo[w], "left"))
            stops.append(np.searchsorted(self._keys, base[w] + 360.0, "left"))
            qids.append(qid[w])
            bases.append(base[w])
        return (np.concatenate(starts), np.concatenate(stops), np.concatenate(qids),
                np.concatenate(bases))

    def select(self, center, half_size):
        """Indices (index order) of the photons in the tangent-plane square of half side
        ``half_size`` (an angle `~astropy.units.Quantity`) around ``center`` (a scalar
        `~astropy.coordinates.SkyCoord`), plus possibly some just outside it."""
        import astropy.units as u

        ra, dec = _center_arrays(center)
        if ra.size != 1:
            raise ValueError("select takes one centre")
        starts, stops, _, _ = self._ranges(ra, dec, u.Quantity(half_size, u.arcsec).value)
        return _gather(starts, stops)[0]


def _remove_dir(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _gather(starts, stops):
    """Concatenated ``arange(start, stop)`` of every range and the range index per item."""
    lens = np.maximum(stops - starts, 0)
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    which = np.repeat(np.arange(len(lens)), lens)
    offs = np.cumsum(lens) - lens
    idx = np.arange(total, dtype=np.int64) - np.repeat(offs - starts, lens)
    return idx, which


def _as_event_list(events):
    if isinstance(events, EventList):
        return events
    if isinstance(events, (str, os.PathLike)) or (
            isinstance(events, (list, tuple)) and events
            and all(isinstance(e, (str, os.PathLike)) for e in events)):
        return EventList.read(events)
    if hasattr(events, "colnames"):
        return EventList(events)
    raise TypeError("events must be an EventList, an astropy Table of photons or event-file "
                    f"path(s); got {type(events).__name__}")


def _center_arrays(centers):
    """ICRS RA, Dec [deg] arrays of a SkyCoord (1-D), with a clear error for NaNs."""
    from astropy.coordinates import ICRS, SkyCoord

    if not isinstance(centers, SkyCoord):
        raise TypeError("centres must be an astropy SkyCoord (e.g. SkyCoord(ra * u.deg, "
                        f"dec * u.deg)); got {type(centers).__name__}")
    c = centers if isinstance(centers.frame, ICRS) else centers.icrs
    ra = np.atleast_1d(np.asarray(c.ra.deg, float))
    dec = np.atleast_1d(np.asarray(c.dec.deg, float))
    bad = ~(np.isfinite(ra) & np.isfinite(dec))
    if bad.any():
        rows = np.nonzero(bad)[0]
        raise ValueError(f"{bad.sum()} centre(s) have non-finite RA/DEC (positions "
                         f"{rows[:10].tolist()}{' ...' if len(rows) > 10 else ''})")
    return ra, dec


# -- binning and smoothing --------------------------------------------------------------------
def _bin_batch(ev, ra0, dec0, p):
    """Counts cubes (B, ny, nx, nb) float32 and photons binned per cube."""
    ny = nx = p.rebin
    nb = p.nbands
    B = len(ra0)
    cells = ny * nx * nb
    starts, stops, qid, base = ev._ranges(ra0, dec0, p.half_size_arcsec)
    lens = np.maximum(stops - starts, 0)
    total = int(lens.sum())
    if total == 0:
        return np.zeros((B, ny, nx, nb), np.float32), np.zeros(B, np.int64)
    idx = np.arange(total, dtype=np.int64)
    idx -= np.repeat(np.cumsum(lens) - lens - starts, lens)
    q = np.repeat(qid, lens)
    # RA offset from the centre [rad]: key - (strip * 400 + ra0) for the range's strip
    da = ev._keys[idx]
    da -= np.repeat(base + ra0[qid], lens)
    da *= np.pi / 180.0
    dec = np.radians(ev._dec[idx])
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
    band = ev._pi[idx].astype(np.float64)
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

        path = os.fspath(path)
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        edges = self.params.band_edges.value
        bands = fits.table_to_hdu(Table({"E_MIN": edges[:-1], "E_MAX": edges[1:]},
                                        units={"E_MIN": "keV", "E_MAX": "keV"}))
        bands.name = "BANDS"
        prim = fits.PrimaryHDU(np.ascontiguousarray(np.moveaxis(self.data, -1, 0),
                                                    dtype=np.float32), header=self.header())
        _atomic(path, lambda tmp: fits.HDUList([prim, bands]).writeto(tmp, overwrite=True),
                ".fits")

    @classmethod
    def read_fits(cls, path):
        """Read an image written by `write_fits`."""
        from astropy.coordinates import SkyCoord
        from astropy.io import fits
        import astropy.units as u

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


def _atomic(path, write, suffix):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=suffix + ".tmp", dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
    ev = _as_event_list(events)
    ra, dec = _center_arrays(center)
    if ra.size != 1:
        raise ValueError("energy_band_image takes one centre; use energy_band_images for many")
    counts, n_ph = _bin_batch(ev, ra, dec, p)
    data = smooth_and_clip(counts, p)[0]
    from astropy.coordinates import SkyCoord
    import astropy.units as u

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
    ev = _as_event_list(events)
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


# -- stacks -----------------------------------------------------------------------------------
@dataclasses.dataclass
class EBIStack:
    """EBIs of many clusters with their parameters and catalogue.

    Attributes
    ----------
    images : ndarray (N, ny, nx, nbands) float32 (or an h5py data set with ``mmap``)
    params : EBIParameters or None
        None when the source does not record them.
    catalog : `~astropy.table.Table` or None
    """

    images: object
    params: EBIParameters | None = None
    catalog: object = None

    def __len__(self):
        return len(self.images)


def write_ebi_stack(path, images, params, catalog=None, overwrite=False):
    """Write EBIs (and their catalogue) to HDF5 atomically.

    Layout: data set ``ebi`` (N, ny, nx, nbands) float32 (gzip, chunks of 64 cubes);
    file attributes ``format`` (`STACK_FORMAT`), ``format_version``,
    ``ebi_parameters`` (YAML of `EBIParameters.to_dict`, or absent if ``params`` is
    None), ``band_edges_keV``, ``axes`` = ``"N, y, x, band"``; optional table
    ``catalog`` (astropy HDF5 with metadata), one row per image. The same layout as the
    CNN training data sets (`astro_clustermass.cnn.dataset`), which need a catalogue.
    """
    import h5py
    import yaml
    from astropy.table import Table

    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, ny, nx, nbands); got shape {images.shape}")
    p = None if params is None else _params(params)
    if p is not None and images.shape[1:] != p.image_shape:
        raise ValueError(f"images have shape {images.shape[1:]} per cluster but the parameters "
                         f"give {p.image_shape}")
    if catalog is not None and len(catalog) != len(images):
        raise ValueError(f"{len(images)} images but {len(catalog)} catalogue rows")
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")

    def write(tmp):
        if catalog is not None:
            Table(catalog).write(tmp, format="hdf5", path="catalog", serialize_meta=True,
                                 overwrite=True)
        with h5py.File(tmp, "a" if catalog is not None else "w") as f:
            chunk = (min(64, max(1, len(images))), *images.shape[1:])
            f.create_dataset("ebi", data=images, chunks=chunk, compression="gzip",
                             compression_opts=1, shuffle=True)
            f.attrs["format"] = STACK_FORMAT
            f.attrs["format_version"] = STACK_FORMAT_VERSION
            f.attrs["axes"] = "N, y, x, band"
            if p is not None:
                f.attrs["ebi_parameters"] = yaml.safe_dump(p.to_dict(), sort_keys=True)
                f.attrs["band_edges_keV"] = p.band_edges.value

    _atomic(path, write, ".h5")


def read_ebi_stack(path, mmap=False):
    """Read EBIs written by `write_ebi_stack` (or a CNN training data set).

    Parameters
    ----------
    path : str
    mmap : bool
        Leave the images in the file (an open h5py data set) instead of loading them.

    Returns
    -------
    EBIStack
    """
    import h5py
    import yaml
    from astropy.table import Table

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"EBI stack {path!r} does not exist")
    f = h5py.File(path, "r")
    try:
        if "ebi" not in f:
            raise KeyError(f"{path}: no 'ebi' data set (keys: {list(f)}); for the teaching "
                           "layout use read_teaching_pickle / convert_teaching_pickle")
        raw = f.attrs.get("ebi_parameters", None)
        if isinstance(raw, bytes):
            raw = raw.decode()
        params = None
        if raw:
            d = yaml.safe_load(raw) if isinstance(raw, str) else raw
            params = None if d is None else EBIParameters.from_dict(d)
        images = f["ebi"] if mmap else f["ebi"][...].astype(np.float32, copy=False)
        has_cat = "catalog" in f
    except BaseException:
        f.close()
        raise
    if not mmap:
        f.close()
    catalog = Table.read(path, path="catalog") if has_cat else None
    return EBIStack(images=images, params=params, catalog=catalog)


# -- the original teaching layout (pandas pickles) -------------------------------------------
def read_teaching_pickle(path, allow_pickle=False, key="gsm_3dImgs"):
    """Read the seed's teaching layout: EBIs under ``gsm_3dImgs`` plus a catalogue.

    The files are pandas pickles. **Unpickling runs code from the file**: only read
    files you trust, and say so with ``allow_pickle=True``; then convert them once to
    a safe format with `convert_teaching_pickle`.

    Accepted contents: a pandas DataFrame with a column ``gsm_3dImgs`` (one (50, 50,
    10) array per row) and catalogue columns (M500c, z, ...), or a dict with
    ``gsm_3dImgs`` (array (N, 50, 50, 10)) and catalogue entries (arrays of length N
    or a DataFrame / dict of columns).

    Returns
    -------
    EBIStack
        ``params`` is None (the file does not record them).
    """
    if not allow_pickle:
        raise ValueError(
            f"{path}: reading a pickle executes code stored in the file; pass "
            "allow_pickle=True only for files you trust, then convert them to HDF5 with "
            "convert_teaching_pickle (read_ebi_stack reads that without pickles)")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"teaching pickle {path!r} does not exist")
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is not None:
        obj = pd.read_pickle(path)
    else:
        import pickle

        try:
            with open(path, "rb") as fh:
                obj = pickle.load(fh)  # noqa: S301 - explicit opt-in above
        except ModuleNotFoundError as exc:
            raise ImportError(f"{path} holds pandas objects; reading it needs pandas, which "
                              f"is not installed ({exc})") from exc
    return _teaching_from_object(obj, key, path)


def _teaching_from_object(obj, key, path):
    from astropy.table import Table

    if hasattr(obj, "columns") and hasattr(obj, "to_dict"):  # a DataFrame
        cols = {str(c): obj[c].to_numpy() for c in obj.columns}
    elif isinstance(obj, dict):
        cols = dict(obj)
    else:
        raise TypeError(f"{path}: expected a DataFrame or dict with {key!r}; got "
                        f"{type(obj).__name__}")
    if key not in cols:
        raise KeyError(f"{path}: no {key!r} entry (keys: {sorted(map(str, cols))})")
    raw = cols.pop(key)
    if isinstance(raw, np.ndarray) and raw.dtype != object:
        images = np.asarray(raw, np.float32)
    else:
        images = np.stack([np.asarray(x, np.float32) for x in raw])
    if images.ndim != 4:
        raise ValueError(f"{path}: {key} has shape {images.shape}; expected (N, ny, nx, nbands)")
    n = len(images)
    table = Table()
    for name, val in cols.items():
        if hasattr(val, "columns") and hasattr(val, "to_dict"):
            for c in val.columns:
                table[str(c)] = val[c].to_numpy()
            continue
        if isinstance(val, dict):
            for c, v in val.items():
                table[str(c)] = np.asarray(v)
            continue
        arr = np.asarray(val)
        if arr.ndim >= 1 and len(arr) == n:
            table[str(name)] = arr
        else:
            table.meta[str(name)] = val if np.ndim(val) == 0 else arr.tolist()
    if len(table.colnames) and len(table) != n:
        raise ValueError(f"{path}: {n} images but {len(table)} catalogue rows")
    return EBIStack(images=images, params=None, catalog=table if table.colnames else None)


def convert_teaching_pickle(src, dst, allow_pickle=False, params=None, overwrite=False):
    """Convert a teaching-layout pickle to an HDF5 EBI stack (`write_ebi_stack`).

    Parameters
    ----------
    src, dst : str
    allow_pickle : bool
        Must be True (see `read_teaching_pickle`).
    params : EBIParameters or dict, optional
        The parameters the images were made with, if known (the file does not say);
        None records none.
    """
    stack = read_teaching_pickle(src, allow_pickle=allow_pickle)
    write_ebi_stack(dst, stack.images, params, catalog=stack.catalog, overwrite=overwrite)
    return dst


# -- command line -----------------------------------------------------------------------------
def add_arguments(parser):
    """Arguments of ``astro-clustermass ebi``."""
    parser.add_argument("catalog", nargs="?",
                        help="cluster catalogue with RA, DEC [deg] (FITS, ECSV, HDF5)")
    parser.add_argument("--events", nargs="+", metavar="FILE",
                        help="event files (FITS EVENTS with RA, DEC, PI [eV])")
    parser.add_argument("-o", "--output", required=True, help="output HDF5 EBI stack")
    parser.add_argument("--chunk-rows", type=int, default=1_000_000,
                        help="event-file rows read at a time (default 1e6)")
    parser.add_argument("--no-quality-filter", action="store_true",
                        help="keep all FLAG / PAT_TYP values")
    parser.add_argument("--convert-pickle", metavar="PICKLE",
                        help="instead: convert a teaching-layout pandas pickle to HDF5")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="confirm that the pickle is trusted (unpickling runs code)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")


def run(args):
    """Run ``astro-clustermass ebi``; returns the exit status."""
    if args.convert_pickle:
        convert_teaching_pickle(args.convert_pickle, args.output,
                                allow_pickle=args.allow_pickle, overwrite=args.overwrite)
        print(f"converted {args.convert_pickle} to {args.output}")
        return 0
    if not args.catalog or not args.events:
        raise SystemExit("astro-clustermass ebi needs a catalogue and --events FILE ...")
    from astropy.coordinates import SkyCoord
    import astropy.units as u
    from astropy.table import Table

    from .esass import read_catalog

    table = read_catalog(args.catalog)
    for c in ("RA", "DEC"):
        if c not in table.colnames:
            raise SystemExit(f"{args.catalog}: no {c} column")
    ra = u.Quantity(table["RA"], u.deg)
    dec = u.Quantity(table["DEC"], u.deg)
    kw = {"flag_mask": None, "pat_typ": None} if args.no_quality_filter else {}
    ev = EventList.read(args.events, chunk_rows=args.chunk_rows, **kw)
    images = energy_band_images(ev, SkyCoord(ra, dec), progress=True)
    write_ebi_stack(args.output, images, EBIParameters(), catalog=Table(table),
                    overwrite=args.overwrite)
    print(f"wrote {len(images)} energy-band images from {len(ev)} photons to {args.output}")
    return 0
