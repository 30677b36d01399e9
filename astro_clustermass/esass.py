"""Read cluster and source catalogues as eSASS writes them, and write tables safely.

`read_catalog` reads any table astropy can read; for eSASS ``ermldet`` source lists
(extension ``SRCLIST``, one row per source, instrument and band) and ``catprep``
catalogues (extension ``CATSRCL``, band-suffixed columns ``ML_RATE_1`` ...) it
also:

- flattens ``ermldet`` lists to one row per source: the summary row
  (``ID_INST == 0, ID_BAND == 0``) plus band-suffixed copies of the per-band
  quantities from the rows with ``ID_INST == 0``... ``ID_BAND == b``;
- finds the energy band of every suffix in the ``SASSHIST`` record of ``ermldet``
  (``EMIN``/``EMAX``) and records it in ``meta['bands']``;
- records the band of every ``ML_RATE`` column in its ``meta['band_keV']``;
- maps the canonical ``count_rate`` to the band that is 0.2-2.3 keV, or to the sum of
  the bands that make it within 0.11 keV (with a warning), when there are such bands
  (otherwise it says so and the caller chooses with ``rate_band``);
- removes units that ``catprep`` writes on dimensionless columns (e.g. ``arcsec``
  on ``DET_LIKE_0`` and ``EXT_LIKE``), with a logged note naming them.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import Column, MaskedColumn, QTable, Table

from .io.atomic import atomic_path
from .io.fits_stream import write_fits_table
from .utils.exceptions import InputDataWarning
from .utils.logger import log

__all__ = ["read_catalog", "write_table", "check_writable", "column_band", "CatalogReadError"]


#: Canonical count-rate band of the package (keV).
COUNT_RATE_BAND = (0.2, 2.3)

# Columns that are pure numbers in eSASS, whatever unit a file claims.
_DIMENSIONLESS = re.compile(
    r"^(DET_LIKE|EXT_LIKE|MASKFRAC|HR_?\d|HR_?\d_ERR|ML_EEF|VIGNET|APE_EEF|APE_POIS|"
    r"ID_\w+|OWNER|detUID)(_\d+)?$")
# Columns whose unit catprep writes wrongly (seen in eSASS4DR1 catprep output).
_KNOWN_UNITS = {re.compile(r"^APE_EXP(_\d+)?$"): u.s, re.compile(r"^APE_RADIUS(_\d+)?$"): u.pix}


class CatalogReadError(OSError):
    """A catalogue file could not be read."""


def _bands_from_history(header):
    """{band index: (emin, emax) keV} from the ermldet entry of SASSHIST, or {}."""
    history = str(header.get("SASSHIST", ""))
    match = re.search(r"TASK:ermldet.*?EMIN=\"([^\"]+)\".*?EMAX=\"([^\"]+)\"", history)
    if not match:
        return {}
    emin = [float(v) / 1000.0 for v in match.group(1).split()]
    emax = [float(v) / 1000.0 for v in match.group(2).split()]
    bands = {i + 1: (lo, hi) for i, (lo, hi) in enumerate(zip(emin, emax))}
    if bands:
        bands[0] = (min(emin), max(emax))
    return bands


def _esass_table(hdu, source):
    """Table from an eSASS HDU as written, tolerating its header defects.

    eSASS writes e.g. ``TNULL = -99`` on unsigned-byte columns, which astropy's
    reader rejects; such impossible null values are ignored (with a note).
    """
    table = Table(meta=dict(hdu.header))
    ignored = []
    for col in hdu.columns:
        data = np.array(hdu.data[col.name])
        mask = None
        if col.null is not None and data.dtype.kind in "iu":
            info = np.iinfo(data.dtype)
            if info.min <= int(col.null) <= info.max:
                mask = data == int(col.null)
            else:
                ignored.append(f"{col.name} (TNULL={col.null} for {data.dtype})")
        unit = u.Unit(col.unit, parse_strict="silent") if col.unit else None
        table[col.name] = (MaskedColumn(data, mask=mask, unit=unit) if mask is not None
                           and mask.any() else Column(data, unit=unit))
    if ignored:
        log.info("%s: ignored impossible null values: %s", source, ", ".join(ignored))
    return table


def _fix_units(table, source):
    fixed = []
    for name in table.colnames:
        col = table[name]
        if col.unit is None:
            continue
        if _DIMENSIONLESS.match(name) and col.unit != u.dimensionless_unscaled:
            fixed.append(f"{name} [{col.unit}]")
            col.unit = None
        for pattern, unit in _KNOWN_UNITS.items():
            if pattern.match(name) and col.unit != unit:
                fixed.append(f"{name} [{col.unit} -> {unit}]")
                col.unit = unit
    if fixed:
        log.info("%s: dropped or corrected wrong units on dimensionless eSASS columns: %s",
                 source, ", ".join(fixed))


def _flatten_ermldet(table):
    """One row per source: summary row plus band-suffixed per-band columns."""
    inst, band = np.asarray(table["ID_INST"]), np.asarray(table["ID_BAND"])
    summary = table[(inst == 0) & (band == 0)]
    ids = np.asarray(summary["ID_SRC"])
    per_band = ("ML_CTS", "ML_CTS_ERR", "ML_RATE", "ML_RATE_ERR", "ML_FLUX", "ML_FLUX_ERR",
                "DET_LIKE", "ML_BKG", "ML_EXP")
    out = summary.copy()
    for b in sorted(set(band[inst == 1]) - {0}):
        rows = table[(inst == 1) & (band == b)]
        index = {sid: i for i, sid in enumerate(np.asarray(rows["ID_SRC"]))}
        take = np.array([index.get(sid, -1) for sid in ids])
        for name in per_band:
            if name not in rows.colnames:
                continue
            values = np.asarray(rows[name], dtype=float)[np.clip(take, 0, None)]
            values[take < 0] = np.nan
            out[f"{name}_{b}"] = values
            out[f"{name}_{b}"].unit = rows[name].unit
    for name in ("ID_INST", "ID_BAND"):
        out.remove_column(name)
    return out


def read_catalog(path, hdu=None, rate_band=None, qtable=True):
    """Read a cluster or source catalogue, including eSASS layouts as they are.

    Parameters
    ----------
    path : str or path-like
        Any file `astropy.table.Table.read` understands (FITS, ECSV, HDF5, VOTable).
    hdu : int or str, optional
        FITS extension; default: ``SRCLIST``/``CATSRCL`` when present, else the first table.
    rate_band : int or sequence of int, optional
        eSASS band suffix(es) whose ``ML_RATE`` becomes the canonical ``count_rate``
        (several are summed, their errors added in quadrature). Default: the band
        whose energy range is 0.2-2.3 keV, if the file defines one; else the
        contiguous bands from 0.2 keV whose sum ends within `BAND_EDGE_TOLERANCE` of
        2.3 keV (e.g. 0.2-2.2 keV, with a warning that says by how much the rate
        differs); else none (with a warning): the count-rate relations then refuse
        the file's ``ML_RATE`` columns of other bands.
    qtable : bool
        Return a `~astropy.table.QTable` (default) or a `~astropy.table.Table`.

    Returns
    -------
    table
        ``meta['bands']`` holds the eSASS bands found, ``meta['esass_layout']`` the
        layout ('ermldet', 'catprep' or absent).

    Raises
    ------
    CatalogReadError
        The file is missing, empty, truncated or not a table.
    """
    path = Path(path)
    if not path.exists():
        from .io.atomic import _describe

        raise CatalogReadError(f"catalogue file {str(path)!r} {_describe(path)}")
    if path.stat().st_size == 0:
        raise CatalogReadError(f"catalogue file {str(path)!r} is empty")
    layout, bands = None, {}
    try:
        if _is_fits(path):
            with fits.open(path, memmap=False) as hdul:
                hdul.verify("exception")
                names = [h.name for h in hdul]
                if hdu is None:
                    hdu = next((n for n in ("SRCLIST", "CATSRCL") if n in names), None)
                    if hdu is None:
                        hdu = next((i for i, h in enumerate(hdul)
                                    if isinstance(h, (fits.BinTableHDU, fits.TableHDU))), None)
                    if hdu is None:
                        raise CatalogReadError(f"{str(path)!r} has no table extension")
                header = hdul[hdu].header
                bands = _bands_from_history(header) or _bands_from_history(hdul[0].header)
                layout = {"SRCLIST": "ermldet", "CATSRCL": "catprep"}.get(
                    str(header.get("EXTNAME")))
                if META_KEYWORD in header or PROVENANCE_KEYWORD in header:
                    # written by this package (a catalogue read and written again): its
                    # columns are as astropy wrote them, its eSASS metadata in META_KEYWORD
                    layout = None
                if layout is None:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", u.UnitsWarning)
                        table = Table.read(hdul[hdu], unit_parse_strict="silent")
                else:
                    table = _esass_table(hdul[hdu], path.name)
        else:
            table = Table.read(path)
    except CatalogReadError:
        raise
    except Exception as exc:
        raise CatalogReadError(
            f"could not read catalogue {str(path)!r}: {type(exc).__name__}: {exc}") from exc
    if layout is not None:
        _fix_units(table, path.name)
        if layout == "ermldet" and {"ID_INST", "ID_BAND"} <= set(table.colnames):
            table = _flatten_ermldet(table)
        table.meta["esass_layout"] = layout
        table.meta["bands"] = {int(b): [float(lo), float(hi)] for b, (lo, hi) in bands.items()}
        _tag_rate_bands(table, bands, layout)
        _map_count_rate(table, bands, rate_band, path.name)
    for key in [k for k in table.meta if k in ("SASSHIST", "HISTORY", "COMMENT")]:
        table.meta.pop(key)
    _drop_structure_keywords(table.meta)
    _meta_from_fits(table)
    return QTable(table) if qtable else table


#: How far the upper edge of summed eSASS bands may lie from 2.3 keV for their sum to
#: stand in for the 0.2-2.3 keV count rate without being asked (e.g. 0.2-2.2 keV, the
#: usual ermldet bands 1-3, which hold 99.2-99.8 % of the 0.2-2.3 keV counts of a
#: 1.5-6 keV cluster at z = 0.1-0.6 by the package's ECF).
BAND_EDGE_TOLERANCE = 0.11

_RATE_COLUMN = re.compile(r"^ML_RATE(_ERR)?(?:_(\d+))?$", re.IGNORECASE)


def _tag_rate_bands(table, bands, layout):
    """Record each ML_RATE(_ERR)(_b) column's energy band in its ``meta['band_keV']``."""
    for name in table.colnames:
        match = _RATE_COLUMN.match(name)
        if not match:
            continue
        # ermldet's unsuffixed rate is the summary row (ID_BAND = 0); catprep suffixes all
        band = int(match.group(2)) if match.group(2) else 0
        if band in bands and (match.group(2) or layout == "ermldet"):
            table[name].info.meta = {**(table[name].info.meta or {}),
                                     "band_keV": [float(v) for v in bands[band]]}


def column_band(table, colname):
    """Energy band [keV] of a count-rate column, where the catalogue records it.

    From the column's ``meta['band_keV']`` (written by `read_catalog`), else, for a
    table with eSASS ``meta['bands']``, from the band suffix of an ``ML_RATE`` column.

    Returns
    -------
    tuple of float or None
        ``(emin, emax)``, or None if the catalogue does not say.
    """
    meta = getattr(table[colname].info, "meta", None) or {}
    bands = table.meta.get("bands")
    match = _RATE_COLUMN.match(colname)
    edges = meta.get("band_keV") if isinstance(meta, dict) else None
    if edges is None and match and isinstance(bands, dict):
        band = int(match.group(2)) if match.group(2) else 0
        edges = bands.get(band, bands.get(str(band)))
    try:
        lo, hi = (float(v) for v in edges)
    except (TypeError, ValueError):  # not recorded, or not a pair of numbers
        return None
    return lo, hi


def _contiguous_bands(bands):
    """Suffixes of the contiguous bands (>= 1) that best make 0.2-2.3 keV, or []."""
    lo, hi = COUNT_RATE_BAND
    chosen, edge = [], None
    for b, (emin, emax) in sorted((b, e) for b, e in bands.items() if b >= 1):
        if edge is None and abs(emin - lo) > 0.011:
            continue
        if edge is not None and abs(emin - edge) > 0.011:
            break
        chosen.append(b)
        edge = emax
        if emax >= hi - BAND_EDGE_TOLERANCE:
            break
    if edge is None or abs(edge - hi) > BAND_EDGE_TOLERANCE:
        return []
    return chosen


def _map_count_rate(table, bands, rate_band, source):
    if "count_rate" in table.colnames:
        return
    requested = rate_band is not None
    if rate_band is None:
        matches = [b for b, (lo, hi) in bands.items()
                   if np.allclose((lo, hi), COUNT_RATE_BAND, atol=0.011)]
        rate_band = matches[:1] or _contiguous_bands(bands)
        if not rate_band:
            text = ", ".join(f"{b}: {lo:g}-{hi:g} keV" for b, (lo, hi) in sorted(bands.items()))
            warnings.warn(f"{source}: no eSASS band or sum of bands is 0.2-2.3 keV (bands "
                          f"{text or 'unknown'}); count_rate is not set, and the count-rate "
                          "relations refuse the ML_RATE columns of other bands: choose the "
                          "bands with rate_band=", InputDataWarning, stacklevel=3)
            return
    chosen = [rate_band] if np.isscalar(rate_band) else list(rate_band)
    cols = [_band_column(table, "ML_RATE", b) for b in chosen]
    missing = [c for c in cols if c not in table.colnames]
    if missing:
        raise CatalogReadError(f"{source}: rate_band {rate_band!r}: no column(s) {missing}")
    rate = sum(np.asarray(table[c], dtype=float) for c in cols)
    errs = [_band_column(table, "ML_RATE_ERR", b) for b in chosen]
    err2 = sum(np.asarray(table[c], dtype=float) ** 2 for c in errs if c in table.colnames)
    table["count_rate"] = rate * (u.ct / u.s)
    table["count_rate_err"] = np.sqrt(err2) * (u.ct / u.s)
    ranges = [bands.get(b) for b in chosen]
    edges = ((min(r[0] for r in ranges), max(r[1] for r in ranges)) if all(ranges) else None)
    energy = f"{edges[0]:g}-{edges[1]:g} keV" if edges else "unknown energies"
    for name in ("count_rate", "count_rate_err"):
        table[name].info.description = f"sum of {', '.join(cols)} ({energy})"
        table[name].info.meta = {"band_keV": list(edges) if edges else None,
                                 "from_columns": cols, "rate_band_requested": requested}
    if edges and not np.allclose(edges, COUNT_RATE_BAND, atol=0.011):
        note = "" if requested else f" ({_band_shortfall(edges)})"
        warnings.warn(f"{source}: count_rate taken from {', '.join(cols)} covers {energy}, "
                      f"not the canonical 0.2-2.3 keV{note}", InputDataWarning, stacklevel=3)


def _band_column(table, name, band):
    """``NAME_b``; for band 0 of an ermldet list, whose summary row is unsuffixed, ``NAME``."""
    suffixed = f"{name}_{band}"
    if band == 0 and suffixed not in table.colnames and name in table.colnames:
        return name
    return suffixed


def _band_shortfall(edges):
    """How much a band other than 0.2-2.3 keV changes the rate of a typical cluster."""
    from .xray.ecf import compute_ecf

    try:
        ratio = compute_ecf(0.3, 3.0) / compute_ecf(0.3, 3.0, band=tuple(edges))
    except OSError:  # the ARF is missing or unreadable: say it without the number
        return "summed without being asked, the nearest the file allows"
    return (f"summed without being asked, the nearest the file allows: a 3 keV cluster at "
            f"z = 0.3 gives {ratio:.4f} times its 0.2-2.3 keV count rate there")


#: FITS header keyword of the provenance written by astro_clustermass <= 0.1 (JSON); read.
PROVENANCE_KEYWORD = "ACM_PROV"

#: FITS header keyword holding, as JSON, the metadata a FITS header cannot hold: nested
#: entries (``meta['astro_clustermass']``, ``meta['bands']``) and keys that are not FITS
#: keywords (``esass_layout``).
META_KEYWORD = "ACM_META"

#: Metadata keys whose dict keys are integers (JSON stores them as text).
_INT_KEYED = ("bands",)


def _fits_storable(key, value):
    """Whether astropy's FITS writer stores ``key: value`` as it is, without a warning."""
    if not (isinstance(key, str) and len(key) <= 8 and key.upper() == key
            and re.fullmatch(r"[A-Z0-9_-]+", key)):
        return False
    values = value if isinstance(value, list) else [value]
    return all(isinstance(v, (str, bool, int, float, np.number, np.bool_)) for v in values)


def _meta_for_fits(table):
    """A shallow copy whose metadata a FITS header holds: entries that it cannot (nested
    dicts, lowercase or long keys) go, as JSON, into the `META_KEYWORD` keyword."""
    import json

    moved = {k: v for k, v in table.meta.items() if not _fits_storable(k, v)}
    if not moved:
        return table
    out = table.copy(copy_data=False)
    out.meta = {k: v for k, v in table.meta.items() if k not in moved}
    out.meta[META_KEYWORD] = json.dumps(moved, default=str, separators=(",", ":"))
    return out


def _meta_from_fits(table):
    """Undo `_meta_for_fits` (and read the provenance keyword of version 0.1)."""
    import json

    for keyword in (PROVENANCE_KEYWORD, META_KEYWORD):
        text = table.meta.pop(keyword, None)
        if text is None:
            continue
        try:
            value = json.loads(text)
        except ValueError:
            warnings.warn(f"could not parse the {keyword} metadata record; left as text",
                          InputDataWarning, stacklevel=3)
            table.meta[keyword] = text
            continue
        if keyword == PROVENANCE_KEYWORD:
            value = {"astro_clustermass": value}
        for key, item in value.items():
            if key in _INT_KEYED and isinstance(item, dict):
                item = {int(k) if str(k).lstrip("-").isdigit() else k: v
                        for k, v in item.items()}
            table.meta[key] = item


def _drop_structure_keywords(meta):
    """Remove the keywords that describe a FITS table's layout (``TTYPEn``, ``TFORMn``,
    ``TNULLn``, ``NAXIS``, ...) from ``meta``: they belong to the file read, and writing
    them back makes astropy warn once for each of them."""
    from astropy.io.fits.connect import REMOVE_KEYWORDS, is_column_keyword

    for key in [k for k in meta if isinstance(k, str)
                and (is_column_keyword(k.upper()) or k.upper() in REMOVE_KEYWORDS)]:
        del meta[key]


def _is_fits(path):
    name = path.name.lower()
    return name.endswith((".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz"))


def check_writable(path, overwrite=False, **kwargs):
    """Raise now what `write_table` would raise at the end of a long computation.

    Checks ``path`` (`~astro_clustermass.io.atomic.check_target`: directory, special
    files, an existing file without ``overwrite``) and that its format (from the suffix,
    or ``format=``) can be written, by writing a small table like the package's outputs
    to a temporary file beside it, which is removed.
    """
    from .io.atomic import check_target

    target = check_target(path, overwrite=overwrite)
    probe = QTable({"M500c_probe": MaskedColumn([1e14, 2e14], mask=[False, True], unit=u.Msun),
                    "M500c_probe_flag": ["", "why"]})
    probe.meta["astro_clustermass"] = {"probe": {"name": "probe"}}
    name = f".{target.name}.probe-{os.getpid()}{''.join(target.suffixes)}"
    tmp = target.parent / name
    try:
        write_table(probe, tmp, overwrite=True, **kwargs)
    except Exception as exc:
        raise OSError(f"cannot write {os.fspath(path)!r} in the format its name asks for: "
                      f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                      ) from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return Path(path)


def write_table(table, path, overwrite=False, **kwargs):
    """Write ``table`` atomically: to a temporary file, then renamed over ``path``.

    An interrupted or failed write never leaves a half-written ``path``. FITS files are
    written a slice of rows at a time (`~astro_clustermass.io.fits_stream`): the file
    ``Table.write`` writes, without a few copies of the table in memory.
    """
    path = Path(path)
    fmt = kwargs.pop("format", None)
    suffix = "".join(path.suffixes) or ".fits"
    if fmt is None and suffix.lower().endswith((".fits", ".fits.gz", ".fit")):
        table = _meta_for_fits(table)
    if fmt is None and suffix.lower().endswith((".h5", ".hdf5")):
        kwargs.setdefault("path", "catalog")
        kwargs.setdefault("serialize_meta", True)
    with atomic_path(path, overwrite=overwrite, suffix=suffix) as tmp:
        with warnings.catch_warnings():
            # 'dex' is not a FITS unit: it is written as text and read back by us.
            warnings.filterwarnings("ignore", message=".*could not be saved in native FITS")
            if fmt in (None, "fits") and _is_fits(path):  # in slices of rows (memory)
                write_fits_table(table, tmp, **kwargs)
            else:
                table.write(tmp, overwrite=True, format=fmt, **kwargs)
    return path
