"""Row chunks of photons from eSASS event files or tables, with the eSASS quality cuts.

The reading half of `astro_clustermass.io.events`: `_FileSource` streams the ``EVENTS``
extension of FITS files from memory maps (a damaged file is an `OSError` naming it),
`_TableSource` an in-memory table; `_chunk_arrays` converts units, applies the cuts
(``FLAG``, ``PAT_TYP``, ``PI > 0``, finite positions) and an optional sky box.
"""

from __future__ import annotations

import os

import numpy as np

#: eSASS ``evtool`` flag mask used for eROSITA imaging analyses (``flag=0xc00fff30``):
#: events with any of these FLAG bits set are rejected.
DEFAULT_FLAG_MASK = 0xC00FFF30
#: Valid eSASS pattern types kept (``evtool pattern=15``: singles, doubles, triples,
#: quadruples, i.e. ``PAT_TYP`` 1-4; 0 and negative values are invalid patterns).
DEFAULT_PAT_TYP = (1, 2, 3, 4)
#: Rows read from an event file at a time (bounds the memory of reading).
EVENT_CHUNK_ROWS = 1_000_000


def in_box(ra, dec, box):
    """Mask of the positions [deg] inside a sky box ``(ra_lo, ra_hi, dec_lo, dec_hi)``.

    RA may wrap (``ra_lo > ra_hi`` means [ra_lo, 360) + [0, ra_hi]); ``(0, 360, ...)``
    is a whole declination band. Non-finite positions are outside.
    """
    ra_lo, ra_hi, dec_lo, dec_hi = box
    inside = (dec >= dec_lo) & (dec <= dec_hi)
    if ra_lo == 0.0 and ra_hi == 360.0:
        return inside
    ra = np.mod(ra, 360.0)
    if ra_lo <= ra_hi:
        return inside & (ra >= ra_lo) & (ra <= ra_hi)
    return inside & ((ra >= ra_lo) | (ra <= ra_hi))



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
    if arr.ndim != 1:
        raise ValueError(f"{source}: column {what} has shape {arr.shape}; expected one value "
                         "per photon")
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


#: Photon energies [eV] below this, in a column without a unit, are keV by mistake: no
#: eROSITA photon has PI < 20 eV (its band starts at 0.2 keV).
_KEV_LIKE_MAX_EV = 20.0


def _check_energies(pi_ev, unit, source):
    """`ValueError` when PI without a unit holds keV (every photon below 20 "eV")."""
    if unit is not None and str(unit).strip() not in ("", "None"):
        return
    if pi_ev.size and float(np.max(pi_ev)) < _KEV_LIKE_MAX_EV:
        raise ValueError(f"{source}: column PI has no unit and every photon's value is below "
                         f"{_KEV_LIKE_MAX_EV:g} (largest {float(np.max(pi_ev)):g}): these "
                         "energies look like keV, but eSASS PI is in eV; give the column a "
                         "unit (TUNIT = 'keV') or convert it")


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


def _chunk_arrays(cols, units, flag_mask, pat_typ, source, keep_time, box=None):
    """Filtered (ra, dec, pi[, time]) of one chunk and the rejection counts.

    With a sky ``box``, rows outside it are dropped first (and not counted as rejected).
    """
    import astropy.units as u

    ra = _as_float(cols["RA"], units.get("RA"), u.deg, "RA", source)
    dec = _as_float(cols["DEC"], units.get("DEC"), u.deg, "DEC", source)
    if box is not None:
        sel = np.flatnonzero(in_box(ra, dec, box))
        cols = {k: (None if v is None else np.asarray(v)[sel]) for k, v in cols.items()}
        ra, dec = ra[sel], dec[sel]
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
    _check_energies(pi[keep], units.get("PI"), source)
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
