"""Catalogue-scale mass estimation on Dask, and estimators run under a time limit.

Two things live here:

- `estimate_catalog`: event files -> energy-band images -> every requested estimator ->
  mass columns, for catalogues of any size. The sky is cut into tiles (declination
  bands x right-ascension cells of about equal area, see `sky_tiles`); every tile is
  one `dask.delayed` task that reads only the events that fall within the tile plus a
  margin of half an EBI (600") and a little more, runs the estimators on the clusters
  of that tile, and writes its result atomically to a work directory. The final table
  is assembled in the original row order and written atomically. A run that was
  interrupted resumes: tiles whose result file exists (for the same catalogue,
  estimators, parameters and event files) are not recomputed. It runs on dask's local
  schedulers (``"threads"``, ``"processes"``, ``"synchronous"``), on a
  `dask.distributed.Client` (e.g. of a ``LocalCluster``) or on any scheduler address
  (``"tcp://host:8786"``).

- `guarded_estimate` / `add_mass_columns_guarded`: run an estimator in a separate
  process with a time limit, so that a plugin that hangs (or kills its process) costs
  masked rows with a reason instead of a hung or crashed session.

See :ref:`parallel` for the design and the measured scaling.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy import units as u

from .api import _failed_estimate, _resolve
from .catalog import CatalogView, ColumnUnitError, MissingColumnError
from .core import EstimatorError, EstimatorSpec, MassEstimate, MassEstimator, write_mass_columns

__all__ = ["estimate_catalog", "TileGrid", "EventFileIndex", "EstimatorTimeout",
           "guarded_estimate", "estimate_masses_guarded", "add_mass_columns_guarded",
           "DEFAULT_TILE_SIZE", "DEFAULT_MARGIN"]

log = logging.getLogger("astro_clustermass")

#: Exceptions that blame the caller's input; they are re-raised, never masked
#: (the same rule as `astro_clustermass.estimate_masses`).
_INPUT_ERRORS = (MissingColumnError, ColumnUnitError, TypeError)


class EstimatorTimeout(EstimatorError):
    """An estimator did not finish within its time limit."""


# -- estimators under a time limit ------------------------------------------------------
def _child(conn, estimator, table, column_map):
    """Body of the guard process: estimate, send back the result or the exception."""
    try:
        result = estimator.estimate(table, column_map=column_map)
        conn.send(("ok", result))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        try:
            conn.send(("error", exc))
        except Exception:  # unpicklable exception: send its text
            conn.send(("error", EstimatorError(
                f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")))
    finally:
        conn.close()


def _mp_context(name):
    if name is None:
        name = os.environ.get("ASTRO_CLUSTERMASS_GUARD_START_METHOD") or (
            "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    return multiprocessing.get_context(name)


def guarded_estimate(estimator, table, timeout, column_map=None, mp_context=None):
    """``estimator.estimate(table)`` in a child process, stopped after ``timeout`` s.

    Parameters
    ----------
    estimator : `~astro_clustermass.MassEstimator`
    table : `~astropy.table.Table` or `~astropy.table.QTable`
    timeout : float
        Time limit [s] for the estimate, including the transfer of the result.
    column_map : dict, optional
    mp_context : str, optional
        `multiprocessing` start method; default: the environment variable
        ``ASTRO_CLUSTERMASS_GUARD_START_METHOD``, else ``"fork"`` where available (fast:
        the estimator and table are inherited, not pickled), else ``"spawn"``. Forking a
        process with several threads (e.g. under dask's threaded scheduler) can deadlock
        in rare cases; ``"forkserver"`` or ``"spawn"`` avoid that at the cost of
        pickling the estimator and the table and importing the package in the child.

    Returns
    -------
    `~astro_clustermass.MassEstimate`

    Raises
    ------
    EstimatorTimeout
        The estimator ran out of time (the child process is killed).
    EstimatorError
        The child process died without an answer (e.g. a crash in C code or
        ``os._exit``).
    Exception
        Whatever the estimator raised, re-raised in this process.
    """
    ctx = _mp_context(mp_context)
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, estimator, table, column_map),
                       name=f"acm-estimate-{estimator.name}", daemon=True)
    start = time.monotonic()
    proc.start()
    child.close()
    try:
        # Wait for an answer (or for the child to die, which closes the pipe).
        if not parent.poll(timeout):
            raise EstimatorTimeout(
                f"estimator {estimator.name!r} did not finish within {timeout:g} s; stopped")
        try:
            status, payload = parent.recv()
        except EOFError:
            proc.join(5)
            raise EstimatorError(
                f"estimator {estimator.name!r}: its process died without an answer "
                f"(exit code {proc.exitcode})") from None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        parent.close()
    log.debug("estimator %r finished in %.2f s (guarded)", estimator.name,
              time.monotonic() - start)
    if status == "error":
        raise payload
    return payload


def estimate_masses_guarded(table, estimators=None, column_map=None, on_error="mask",
                            timeout=None, mp_context=None):
    """`~astro_clustermass.estimate_masses` with a time limit per estimator.

    With ``timeout=None`` this is exactly `~astro_clustermass.estimate_masses`.
    Otherwise every estimator runs in its own process (see `guarded_estimate`); one
    that runs out of time, or whose process dies, is treated like one that raised:
    its rows are masked with the reason (``on_error='mask'``) or `EstimatorError`
    is raised (``on_error='raise'``). Errors in the input (missing column, wrong
    unit or type) always raise.

    Returns
    -------
    dict
        Estimator name -> `~astro_clustermass.MassEstimate`.
    """
    from astropy.table import Table

    from .api import estimate_masses

    if timeout is None:
        return estimate_masses(table, estimators, column_map, on_error)
    if not isinstance(table, Table):
        raise TypeError(f"expected an astropy Table or QTable, got {type(table).__name__}")
    if on_error not in ("mask", "raise"):
        raise ValueError(f"on_error must be 'mask' or 'raise', not {on_error!r}")
    timeout = float(timeout)
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    results = {}
    for estimator in _resolve(estimators, table, column_map):
        try:
            result = guarded_estimate(estimator, table, timeout, column_map, mp_context)
            if not isinstance(result, MassEstimate) or len(result) != len(table):
                raise EstimatorError(
                    f"returned {getattr(result, '__len__', lambda: '?')()} rows for a "
                    f"table of {len(table)} rows")
        except _INPUT_ERRORS:
            raise
        except Exception as exc:
            if on_error == "raise":
                if isinstance(exc, EstimatorError) and estimator.name in str(exc):
                    raise
                raise EstimatorError(f"estimator {estimator.name!r} failed: {exc}") from exc
            log.warning("estimator %r failed; its columns are masked: %s: %s",
                        estimator.name, type(exc).__name__, exc)
            result = _failed_estimate(estimator, len(table), exc)
        results[estimator.name] = result
    return results


def add_mass_columns_guarded(table, estimators=None, column_map=None, copy=True,
                             on_error="mask", timeout=None, mp_context=None):
    """`~astro_clustermass.add_mass_columns` with a time limit per estimator.

    Parameters are those of `~astro_clustermass.add_mass_columns`, plus ``timeout``
    [s] (None: no limit, no child process) and ``mp_context`` (see
    `guarded_estimate`).
    """
    results = estimate_masses_guarded(table, estimators, column_map, on_error, timeout,
                                      mp_context)
    out = table.copy(copy_data=True) if copy else table
    for estimate in results.values():
        write_mass_columns(out, estimate, copy=False)
    return out



# -- sky tiles ----------------------------------------------------------------------------
#: Default tile side [deg]; a tile is about DEFAULT_TILE_SIZE^2 deg^2.
DEFAULT_TILE_SIZE = 8.0
#: Events read around a tile: half the 1200" EBI side, plus 60" for the tangent-plane
#: projection and the PSF wings.
DEFAULT_MARGIN = 660.0 * u.arcsec


class TileGrid:
    """Declination bands x right-ascension cells of about equal area.

    The sky is cut into ``ceil(180 / tile_size)`` declination bands of equal height
    ``h``; a band of solid angle ``A`` is cut into ``max(1, round(A / h^2))`` equal RA
    cells, so that every tile has an area of ``h^2`` to within the rounding of the
    number of cells (a few per cent; up to a factor 1.5 in the two polar bands).
    No HEALPix library is needed (``astropy_healpix`` is not a dependency).

    Parameters
    ----------
    tile_size : float
        Approximate side of a tile [deg].
    """

    def __init__(self, tile_size=DEFAULT_TILE_SIZE):
        tile_size = float(u.Quantity(tile_size, u.deg).value)
        if not (0.01 <= tile_size <= 180.0):
            raise ValueError(f"tile_size must lie in [0.01, 180] deg, not {tile_size!r}")
        self.tile_size = tile_size
        self.n_bands = int(np.ceil(180.0 / tile_size - 1e-9))
        self.band_height = 180.0 / self.n_bands
        lo = -90.0 + self.band_height * np.arange(self.n_bands)
        band_area = (np.radians(360.0) * (np.sin(np.radians(lo + self.band_height))
                                          - np.sin(np.radians(lo))) * (180.0 / np.pi) ** 2)
        self.n_ra = np.maximum(1, np.round(band_area / self.band_height ** 2)).astype(int)
        self.offset = np.concatenate([[0], np.cumsum(self.n_ra)])
        self.n_tiles = int(self.offset[-1])

    def tile_of(self, ra, dec):
        """Tile index of every position (deg); -1 where RA or Dec is not finite/valid."""
        ra = np.asarray(ra, dtype=float)
        dec = np.asarray(dec, dtype=float)
        ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90.0)
        band = np.clip(((np.where(ok, dec, 0.0) + 90.0) / self.band_height).astype(int),
                       0, self.n_bands - 1)
        n_ra = self.n_ra[band]
        cell = np.minimum((np.mod(np.where(ok, ra, 0.0), 360.0) / 360.0 * n_ra).astype(int),
                          n_ra - 1)
        return np.where(ok, self.offset[band] + cell, -1)

    def bounds(self, tile):
        """``(ra_lo, ra_hi, dec_lo, dec_hi)`` of a tile [deg]."""
        band = int(np.searchsorted(self.offset, tile, side="right") - 1)
        cell = int(tile - self.offset[band])
        width = 360.0 / self.n_ra[band]
        dec_lo = -90.0 + band * self.band_height
        return cell * width, (cell + 1) * width, dec_lo, dec_lo + self.band_height

    def area(self, tile):
        """Solid angle of a tile [deg^2]."""
        ra_lo, ra_hi, dec_lo, dec_hi = self.bounds(tile)
        return float(np.radians(ra_hi - ra_lo) * (np.sin(np.radians(dec_hi))
                                                  - np.sin(np.radians(dec_lo)))
                     * (180.0 / np.pi) ** 2)

    def search_box(self, tile, margin):
        """The tile grown by ``margin`` [deg]: ``(ra_lo, ra_hi, dec_lo, dec_hi)``.

        RA may wrap (``ra_lo > ra_hi`` means [ra_lo, 360) + [0, ra_hi]); a box that
        reaches a pole or covers all RA is ``(0, 360, ...)``.
        """
        ra_lo, ra_hi, dec_lo, dec_hi = self.bounds(tile)
        dec_lo, dec_hi = max(-90.0, dec_lo - margin), min(90.0, dec_hi + margin)
        edge = max(abs(dec_lo), abs(dec_hi))
        if edge >= 89.999:
            return 0.0, 360.0, dec_lo, dec_hi
        dra = margin / np.cos(np.radians(edge))
        if ra_hi - ra_lo + 2 * dra >= 360.0:
            return 0.0, 360.0, dec_lo, dec_hi
        return (ra_lo - dra) % 360.0, (ra_hi + dra) % 360.0, dec_lo, dec_hi


#: A search box no event falls in (Dec > 90).
_EMPTY_BOX = (0.0, 0.0, 91.0, 91.0)


def _in_box(ra, dec, box):
    ra_lo, ra_hi, dec_lo, dec_hi = box
    inside = (dec >= dec_lo) & (dec <= dec_hi)
    if ra_lo == 0.0 and ra_hi == 360.0:
        return inside
    ra = np.mod(ra, 360.0)
    if ra_lo <= ra_hi:
        return inside & (ra >= ra_lo) & (ra <= ra_hi)
    return inside & ((ra >= ra_lo) | (ra <= ra_hi))


# -- event files -----------------------------------------------------------------------------
#: Rows read from an event file at a time (bounds the memory of a tile task).
EVENT_CHUNK_ROWS = 1_000_000


def _events_hdu(hdul, path):
    from astropy.io import fits

    if "EVENTS" in hdul:
        hdu = hdul["EVENTS"]
    else:
        hdu = next((h for h in hdul if isinstance(h, fits.BinTableHDU)), None)
        if hdu is None:
            raise OSError(f"event file {str(path)!r} has no EVENTS (or other table) extension")
    names = [n.upper() for n in hdu.columns.names]
    if "RA" not in names or "DEC" not in names:
        raise OSError(f"event file {str(path)!r}: extension {hdu.name} has no RA/DEC columns "
                      f"(columns: {', '.join(hdu.columns.names)})")
    return hdu


def _read_columns(hdu, names, start, stop):
    return [np.asarray(hdu.data[n][start:stop], dtype=float) for n in names]


@dataclass
class _EventFile:
    path: str
    size: int
    mtime_ns: int
    n_events: int
    dec_min: float
    dec_max: float
    ra_cells: list  # occupied 1-degree RA cells
    columns: list  # column names of the events extension


def _index_file(path):
    """`_EventFile` of one event file: streams its RA/DEC once."""
    from astropy.io import fits

    st = os.stat(path)
    try:
        with fits.open(path, memmap=True) as hdul:
            hdu = _events_hdu(hdul, path)
            columns = list(hdu.columns.names)
            n = len(hdu.data) if hdu.data is not None else 0
            cells = np.zeros(360, bool)
            dmin, dmax = np.inf, -np.inf
            for start in range(0, n, EVENT_CHUNK_ROWS):
                ra, dec = _read_columns(hdu, ("RA", "DEC"), start, start + EVENT_CHUNK_ROWS)
                ok = np.isfinite(ra) & np.isfinite(dec)
                if ok.any():
                    cells[np.mod(ra[ok], 360.0).astype(int) % 360] = True
                    dmin = min(dmin, float(dec[ok].min()))
                    dmax = max(dmax, float(dec[ok].max()))
    except OSError:
        raise
    except Exception as exc:
        raise OSError(f"could not read event file {path!r}: {type(exc).__name__}: "
                      f"{exc}") from exc
    return _EventFile(path, st.st_size, st.st_mtime_ns, n, dmin, dmax,
                      np.flatnonzero(cells).tolist(), columns)


class EventFileIndex:
    """Where on the sky each event file has photons (1-degree RA cells, Dec range).

    Built once by streaming the RA/DEC columns (`EVENT_CHUNK_ROWS` at a time; one Dask
    task per file when ``compute`` is given) and cached as JSON; a tile task opens only
    the files that overlap its search box.

    Parameters
    ----------
    paths : sequence of path-like
        Event files (FITS with an ``EVENTS`` extension holding RA, DEC [deg]).
    cache : path-like, optional
        JSON file to read/write the index (entries are reused while a file's size
        and modification time are unchanged).
    compute : callable, optional
        ``compute(list_of_delayed) -> list of results``, to index the files as tasks.
    """

    def __init__(self, paths, cache=None, compute=None):
        cached = {}
        if cache is not None and os.path.exists(cache):
            try:
                with open(cache) as fh:
                    cached = {d["path"]: _EventFile(**d) for d in json.load(fh)}
            except (ValueError, TypeError, KeyError):
                cached = {}
        entries, todo = [], []
        for path in paths:
            path = os.path.abspath(os.fspath(path))
            if not os.path.exists(path):
                raise FileNotFoundError(f"event file {path!r} does not exist")
            st = os.stat(path)
            hit = cached.get(path)
            if hit is not None and hit.size == st.st_size and hit.mtime_ns == st.st_mtime_ns:
                entries.append(hit)
            else:
                entries.append(None)
                todo.append((len(entries) - 1, path))
        if todo:
            # One task per file on the run's scheduler (``compute``), else here.
            if compute is None:
                done = [_index_file(p) for _, p in todo]
            else:
                import dask

                done = compute([dask.delayed(_index_file, pure=False)(
                    p, dask_key_name=f"acm-index-{k}") for k, (_, p) in enumerate(todo)])
            for (i, _), entry in zip(todo, done):
                entries[i] = entry
        self.files = entries
        if cache is not None:
            _atomic_write_text(cache, json.dumps([f.__dict__ for f in self.files]))

    def common_columns(self, paths):
        """Column names present in every one of ``paths`` (in the first one's order)."""
        by_path = {f.path: f.columns for f in self.files}
        common = None
        for p in paths:
            names = by_path[p]
            common = list(names) if common is None else [c for c in common if c in names]
        return common

    def overlapping(self, box):
        """Event files with photons in the search box ``(ra_lo, ra_hi, dec_lo, dec_hi)``."""
        ra_lo, ra_hi, dec_lo, dec_hi = box
        out = []
        for f in self.files:
            if f.n_events == 0 or f.dec_max < dec_lo or f.dec_min > dec_hi:
                continue
            cells = np.asarray(f.ra_cells, dtype=float)
            # a cell [c, c+1) overlaps the box if either edge or its middle is inside
            if _in_box(np.concatenate([cells, cells + 0.999999, cells + 0.5]),
                       np.full(3 * len(cells), 0.5 * (dec_lo + dec_hi)), box).any():
                out.append(f.path)
        return out


def select_events(paths, box, output, columns=None):
    """Write the events of ``paths`` that fall in ``box`` to the FITS file ``output``.

    Files are streamed `EVENT_CHUNK_ROWS` rows at a time; the output has an
    ``EVENTS`` extension with the columns common to all inputs (formats and units of
    the first) and the first file's header keywords (``TELESCOP`` ...). Written
    atomically.

    Returns
    -------
    int
        Number of events written.
    """
    from astropy.io import fits

    if not paths:
        raise ValueError("no event files to select from")
    if columns is None:  # the columns common to every file (headers only)
        common = None
        for path in paths:
            with fits.open(path, memmap=True) as hdul:
                names = _events_hdu(hdul, path).columns.names
            common = list(names) if common is None else [c for c in common if c in names]
        columns = common
    coldefs, header, parts = None, None, {name: [] for name in columns}
    for path in paths:
        with fits.open(path, memmap=True) as hdul:
            hdu = _events_hdu(hdul, path)
            if coldefs is None:
                coldefs = {c.name: c for c in hdu.columns if c.name in parts}
                header = hdu.header.copy()
            n = len(hdu.data) if hdu.data is not None else 0
            for start in range(0, n, EVENT_CHUNK_ROWS):
                stop = start + EVENT_CHUNK_ROWS
                ra, dec = _read_columns(hdu, ("RA", "DEC"), start, stop)
                keep = np.flatnonzero(_in_box(ra, dec, box))
                if not len(keep):
                    continue
                for name in parts:
                    parts[name].append(np.array(hdu.data[name][start:stop][keep]))
    n_out = sum(len(a) for a in parts[next(iter(coldefs))])
    columns = [fits.Column(name=cd.name, format=cd.format, unit=cd.unit, dim=cd.dim,
                           array=np.concatenate(parts[name]) if parts[name] else None)
               for name, cd in coldefs.items()]
    for key in ("NAXIS1", "NAXIS2", "TFIELDS"):
        header.pop(key, None)
    for key in [k for k in header if k[:5] in ("TTYPE", "TFORM", "TUNIT", "TNULL", "TSCAL",
                                              "TZERO", "TDISP", "TDIM")
                or k[:5] in ("TCTYP", "TCRVL", "TCDLT", "TCRPX", "TLMIN", "TLMAX")]:
        header.pop(key, None)
    hdu = fits.BinTableHDU.from_columns(columns, header=header, name="EVENTS", nrows=n_out)
    hdu.header["ACMTILE"] = (json.dumps([round(float(b), 6) for b in box]), "tile box, deg")
    _atomic_write(output, lambda tmp: fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp))
    return n_out


# -- small helpers ----------------------------------------------------------------------------
def _atomic_write(path, writer):
    """Call ``writer(tmp)`` on a temporary file next to ``path``, then rename it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _atomic_write_text(path, text):
    def writer(tmp):
        with open(tmp, "w") as fh:
            fh.write(text)
    _atomic_write(path, writer)


def _table_hash(table):
    """SHA-256 of a table's column names, types, units, values and masks."""
    h = hashlib.sha256()
    h.update(str(len(table)).encode())
    for name in table.colnames:
        col = table[name]
        data = getattr(col, "unmasked", col)
        data = np.asarray(getattr(data, "value", data))
        h.update(f"{name}|{col.dtype}|{getattr(col, 'unit', None)}|{col.shape}".encode())
        if data.dtype.kind == "O":
            h.update(repr(data.tolist()).encode())
        else:
            h.update(np.ascontiguousarray(data).tobytes())
        mask = getattr(col, "mask", None)
        if mask is not None:
            h.update(np.ascontiguousarray(np.asarray(mask)).tobytes())
    return h.hexdigest()


def _plain(obj):
    return json.loads(json.dumps(obj, default=str, sort_keys=True))


# -- estimator items ----------------------------------------------------------------------------
@dataclass
class _Item:
    """One requested estimator: how a tile task builds it."""

    name: str
    spec: EstimatorSpec | None = None     # build on the worker with spec.load(**options)
    options: dict | None = None
    instance: MassEstimator | None = None  # or use this instance as it is
    wants_events: bool = False

    def build(self, events=None):
        """The estimator; built once per process unless it gets a tile's events."""
        if self.instance is not None:
            return self.instance
        options = dict(self.options or {})
        if self.wants_events and events is not None:
            options["events"] = events
            return self.spec.load(**options)
        key = (self.name, repr(self.spec.factory), json.dumps(_plain(options), sort_keys=True))
        estimator = _BUILT.get(key)
        if estimator is None:
            estimator = _BUILT[key] = self.spec.load(**options)
        return estimator


#: Estimators built in this process (worker), by name, factory and options: building
#: some is slow (a relation builds an astropy cosmology, a CNN loads its weights).
_BUILT = {}


def _factory_accepts_events(spec):
    factory = spec.factory
    if isinstance(factory, str):
        import importlib

        module, _, attr = factory.partition(":")
        factory = importlib.import_module(module)
        for part in attr.split("."):
            factory = getattr(factory, part)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return "events" in params


def _items(estimators, table, column_map, events):
    """Resolve the user's estimators into `_Item` objects (and check them)."""
    from .registry import default_registry

    if estimators is None:
        resolved = _resolve(None, table, column_map)
        estimators = [e.name for e in resolved]
    if isinstance(estimators, (str, MassEstimator, EstimatorSpec)):
        estimators = [estimators]
    items = []
    for entry in estimators:
        options = {}
        if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], dict):
            entry, options = entry
        if isinstance(entry, MassEstimator):
            items.append(_Item(entry.name, instance=entry))
            continue
        if isinstance(entry, str):
            spec = default_registry().spec(entry)
        elif isinstance(entry, EstimatorSpec):
            spec = entry
        else:
            raise TypeError("estimators must be names, EstimatorSpec objects, (name, options) "
                            f"pairs or MassEstimator instances, got {entry!r}")
        wants = bool(events) and _factory_accepts_events(spec)
        items.append(_Item(spec.name, spec=spec, options=dict(options), wants_events=wants))
    names = [i.name for i in items]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise EstimatorError(f"estimator(s) requested twice: {dupes}")
    return items


# -- the tile task ---------------------------------------------------------------------------------
def _tile_file(run_dir, tile):
    return Path(run_dir) / f"tile_{tile:+07d}.npz"


def _run_tile(tile, rows, table, items, event_paths, box, run_dir, column_map, on_error,
              timeout, event_columns=None):
    """Estimate the masses of one tile's clusters and write them to its result file."""
    out_path = _tile_file(run_dir, tile)
    events_file = None
    if any(i.wants_events for i in items) and event_paths:
        events_file = Path(run_dir) / f"events_{tile:+07d}.fits"
        select_events(event_paths, box, events_file, columns=event_columns)
    try:
        estimators = [i.build(events=str(events_file) if events_file else None)
                      for i in items]
        results = estimate_masses_guarded(table, estimators, column_map, on_error, timeout)
    finally:
        if events_file is not None and events_file.exists():
            events_file.unlink()
    arrays = {"row": np.asarray(rows, dtype=np.int64)}
    provenance = {}
    for k, (name, est) in enumerate(results.items()):
        arrays[f"mu_{k}"] = np.asarray(est.log10_mass, dtype=float)
        arrays[f"sigma_{k}"] = np.asarray(est.log10_mass_err, dtype=float)
        arrays[f"valid_{k}"] = np.asarray(est.valid, dtype=bool)
        arrays[f"reason_{k}"] = np.asarray(est.reason, dtype=str)
        provenance[name] = {"index": k, "meta": _plain(dict(est.meta))}
    arrays["meta"] = np.array(json.dumps({"tile": int(tile), "estimators": provenance}))

    def writer(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    _atomic_write(out_path, writer)
    return str(out_path)


def _read_tile(path, n_rows):
    """Arrays and metadata of a tile result file (numpy .npz, no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays.pop("meta")))
    except Exception as exc:
        raise EstimatorError(f"tile result {path} is unreadable ({type(exc).__name__}: {exc}); "
                             "delete it and re-run") from exc
    rows = arrays["row"]
    if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
        raise EstimatorError(f"tile result {path} has rows outside the catalogue; delete it")
    return arrays, meta, rows


# -- the driver ----------------------------------------------------------------------------------
#: How long to try to reach a scheduler address before giving up.
SCHEDULER_CONNECT_TIMEOUT = "30s"


def _scheduler_kwargs(scheduler, workers):
    """(compute kwargs, client to close, cluster to close) for a scheduler argument."""
    if scheduler is None:
        return {"scheduler": "threads", "num_workers": workers} if workers else {}, None, None
    if isinstance(scheduler, str):
        s = scheduler.strip()
        if s in ("threads", "threading", "processes", "multiprocessing", "synchronous",
                 "sync", "single-threaded"):
            kw = {"scheduler": s}
            if workers and s not in ("synchronous", "sync", "single-threaded"):
                kw["num_workers"] = workers
            return kw, None, None
        from distributed import Client

        if s in ("local-cluster", "localcluster", "distributed"):
            from distributed import LocalCluster

            cluster = LocalCluster(n_workers=workers or 1, threads_per_worker=1,
                                   processes=True, dashboard_address=None)
            client = Client(cluster)
            return {"scheduler": client}, client, cluster
        if "://" in s or ":" in s:
            try:
                client = Client(s, timeout=SCHEDULER_CONNECT_TIMEOUT)
            except Exception as exc:
                raise OSError(f"could not connect to the Dask scheduler at {s!r}: "
                              f"{type(exc).__name__}: {exc}") from exc
            return {"scheduler": client}, client, None
        raise ValueError(f"unknown scheduler {scheduler!r}: use 'threads', 'processes', "
                         "'synchronous', 'local-cluster', a scheduler address "
                         "'tcp://host:port', or a distributed.Client")
    # a distributed.Client (or anything dask accepts as a scheduler)
    return {"scheduler": scheduler}, None, None


def estimate_catalog(catalog, estimators=None, events=None, tile_size=DEFAULT_TILE_SIZE,
                     scheduler=None, workers=None, output=None, overwrite=False, resume=True,
                     workdir=None, column_map=None, on_error="mask", timeout=None,
                     margin=DEFAULT_MARGIN, cleanup=None, progress=True):
    """Masses for a whole catalogue, tile by tile, as Dask tasks.

    Parameters
    ----------
    catalog : `~astropy.table.Table` or `~astropy.table.QTable`, or path
        The cluster catalogue (a path is read with `~astro_clustermass.esass.read_catalog`).
    estimators : list, optional
        Estimator names, `~astro_clustermass.EstimatorSpec` objects, ``(name, options)``
        pairs, or `~astro_clustermass.MassEstimator` instances (these must be picklable
        for process-based schedulers and are used as they are). Default: every
        registered estimator whose input columns are present. A name or spec whose
        factory takes ``events=`` gets, in every tile, an event file holding the
        photons of that tile plus ``margin`` (e.g. ``cnn-ensemble``, which builds its
        energy-band images from them).
    events : sequence of path-like, optional
        Event files (FITS, extension ``EVENTS`` with RA, DEC [deg], PI, TIME ...).
    tile_size : float or Quantity
        Side of a sky tile [deg] (see `TileGrid`).
    scheduler : str or `distributed.Client`, optional
        ``None`` (dask's default local threads), ``"threads"``, ``"processes"``,
        ``"synchronous"``, ``"local-cluster"`` (a `distributed.LocalCluster` of
        ``workers`` processes, started and stopped here), a scheduler address such as
        ``"tcp://10.0.0.1:8786"``, or a connected `distributed.Client`.
    workers : int, optional
        Workers of the local schedulers / of the ``local-cluster``.
    output : path-like, optional
        Write the final table here (atomically; format from the suffix).
    overwrite : bool
        Replace an existing ``output``.
    resume : bool
        Reuse tile results of an earlier run with the same catalogue, estimators,
        parameters and event files (default). False recomputes every tile.
    workdir : path-like, optional
        Where tile results go (in a sub-directory named after the run's hash).
        Default: ``<output>.tiles`` next to ``output``; without ``output`` a temporary
        directory (no resume).
    column_map : dict, optional
        Canonical name -> column name in ``catalog``.
    on_error : {'mask', 'raise'}
        As in `~astro_clustermass.add_mass_columns`.
    timeout : float, optional
        Time limit per estimator and tile [s] (runs each in a child process; see
        `guarded_estimate`).
    margin : Quantity
        Events read beyond a tile's edge (default 660": half the 1200" EBI plus 60").
    cleanup : bool, optional
        Delete the tile results after a successful run (default: True when ``output``
        is written, else False).
    progress : bool
        tqdm progress bar over tiles.

    Returns
    -------
    table : same class as ``catalog``
        The catalogue with the mass columns of every estimator, in the original row
        order; identical to `~astro_clustermass.add_mass_columns` for estimators that
        treat rows independently. ``meta['astro_clustermass_run']`` records the run
        (hash, tiles, tile size, scheduler).
    """
    from .esass import read_catalog, write_table

    t_start = time.monotonic()
    if isinstance(catalog, (str, os.PathLike)):
        catalog = read_catalog(catalog)
    from astropy.table import Table

    if not isinstance(catalog, Table):
        raise TypeError(f"expected an astropy Table or QTable, got {type(catalog).__name__}")
    if on_error not in ("mask", "raise"):
        raise ValueError(f"on_error must be 'mask' or 'raise', not {on_error!r}")
    if output is not None and os.path.exists(output) and not overwrite:
        raise FileExistsError(f"{os.fspath(output)!r} exists; pass overwrite=True to replace it")
    events = [os.path.abspath(os.fspath(p)) for p in (events or [])]
    margin_deg = float(u.Quantity(margin, u.arcsec).to_value(u.deg))
    items = _items(estimators, catalog, column_map, events)
    # Fail fast on input errors, as add_mass_columns does, before any task starts.
    probe = []
    for item in items:
        est = item.build() if not item.wants_events else item.spec.load(
            **dict(item.options or {}))
        CatalogView(catalog, required=est.inputs, optional=est.optional_inputs,
                    column_map=column_map)
        prov = est.provenance()
        prov.pop("date", None)
        probe.append(_plain(prov))
    if any(i.wants_events for i in items) and not events:
        log.warning("estimators %s read events but no event files were given",
                    [i.name for i in items if i.wants_events])

    grid = TileGrid(tile_size)
    n = len(catalog)
    try:
        pos = CatalogView(catalog, optional=("RA", "DEC"), column_map=column_map)
        ra, dec = pos.get("RA"), pos.get("DEC")
    except (MissingColumnError, ColumnUnitError) as exc:
        # Positions only place rows on tiles; estimators that need them check them.
        log.warning("estimate_catalog: no usable positions (%s); all rows form one task",
                    exc)
        ra = dec = None
    tiles = grid.tile_of(ra.value if ra is not None else np.full(n, np.nan),
                         dec.value if dec is not None else np.full(n, np.nan))

    # The run's identity: everything that changes a tile's result.
    key = {
        "catalog": _table_hash(catalog), "estimators": probe,
        "tile_size": grid.tile_size, "margin_deg": margin_deg,
        "column_map": column_map or {}, "on_error": on_error, "timeout": timeout,
        "events": [[p, os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in events],
        "package": __import__("astro_clustermass").__version__,
    }
    run_hash = hashlib.sha256(json.dumps(_plain(key), sort_keys=True).encode()).hexdigest()
    own_workdir = workdir is None
    if workdir is None:
        if output is not None:
            workdir = f"{os.fspath(output)}.tiles"
            temporary = False
        else:
            workdir = tempfile.mkdtemp(prefix="acm-tiles-")
            temporary = True
    else:
        temporary = False
    run_dir = Path(workdir) / f"run-{run_hash[:16]}"
    run_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(run_dir / "manifest.json", json.dumps(_plain(key), indent=1))
    if cleanup is None:
        cleanup = output is not None or temporary
    if temporary and not cleanup:
        log.info("tile results kept in %s", workdir)

    kwargs, client, cluster = _scheduler_kwargs(scheduler, workers)
    try:
        paths = _run_tasks(catalog, items, events, grid, tiles, run_dir, run_hash, workdir,
                           margin_deg, column_map, on_error, timeout, resume, kwargs,
                           progress)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    n_tiles, reused, paths = paths

    # Assemble in the original row order.
    names = [i.name for i in items]
    mu = {k: np.full(n, np.nan) for k in names}
    sig = {k: np.full(n, np.nan) for k in names}
    valid = {k: np.zeros(n, bool) for k in names}
    reason = {k: np.full(n, "", dtype=object) for k in names}
    meta = {}
    seen = np.zeros(n, bool)
    for path in paths:
        arrays, tile_meta, rows = _read_tile(path, n)
        seen[rows] = True
        for name, info in tile_meta["estimators"].items():
            k = info["index"]
            mu[name][rows] = arrays[f"mu_{k}"]
            sig[name][rows] = arrays[f"sigma_{k}"]
            valid[name][rows] = arrays[f"valid_{k}"]
            reason[name][rows] = arrays[f"reason_{k}"]
            if name not in meta or "error" in meta[name]:
                meta[name] = info["meta"]
    if not seen.all():
        raise EstimatorError(f"{int((~seen).sum())} row(s) have no tile result; re-run")
    out = catalog.copy(copy_data=True)
    for name in names:
        estimate = MassEstimate(name, mu[name], sig[name], valid[name],
                                np.asarray(reason[name].tolist() if n else [], dtype=str),
                                meta=meta.get(name, {"name": name}))
        write_mass_columns(out, estimate, copy=False)
    out.meta["astro_clustermass_run"] = {
        "run_hash": run_hash, "tiles": int(n_tiles), "tiles_reused": int(reused),
        "tile_size_deg": grid.tile_size, "margin_arcsec": margin_deg * 3600.0,
        "scheduler": str(scheduler), "workers": workers,
        "wall_s": round(time.monotonic() - t_start, 3),
    }
    if output is not None:
        to_write = out.copy(copy_data=False)
        to_write.meta = dict(out.meta)
        to_write.meta["ACM_RUN"] = json.dumps(to_write.meta.pop("astro_clustermass_run"))
        write_table(to_write, output, overwrite=overwrite)
    if cleanup:
        shutil.rmtree(run_dir, ignore_errors=True)
        if own_workdir:  # the default <output>.tiles or a temporary directory
            shutil.rmtree(workdir, ignore_errors=True)
    return out


def _run_tasks(catalog, items, events, grid, tiles, run_dir, run_hash, workdir, margin_deg,
               column_map, on_error, timeout, resume, kwargs, progress):
    """Index the event files, build one task per tile not done yet, and run them."""
    import dask

    n = len(catalog)
    index = EventFileIndex(events, cache=Path(workdir) / "events_index.json",
                           compute=lambda tasks: _compute(tasks, kwargs, False)) if (
        events and any(i.wants_events for i in items)) else None
    # Tiles: positionless rows (-1) form one extra task.
    order = np.argsort(tiles, kind="stable")
    ids, starts = np.unique(tiles[order], return_index=True)
    groups = np.split(order, starts[1:]) if n else []
    tasks, done, reused = [], [], 0
    for tile, rows in zip(ids, groups):
        tile = int(tile)
        path = _tile_file(run_dir, tile)
        if resume and path.exists():
            done.append(str(path))
            reused += 1
            continue
        if not resume and path.exists():
            path.unlink()
        if index is None:
            box, paths = None, []
        elif tile >= 0:
            box = grid.search_box(tile, margin_deg)
            paths = index.overlapping(box) or events[:1]  # none overlap: an empty file
        else:  # rows without a position: an empty event file (their rows are masked)
            box, paths = _EMPTY_BOX, events[:1]
        sub = catalog[rows]
        tasks.append(dask.delayed(_run_tile, pure=False)(
            tile, rows, sub, items, paths, box, str(run_dir), column_map, on_error, timeout,
            index.common_columns(paths) if paths else None,
            dask_key_name=f"acm-tile-{run_hash[:8]}-{tile}"))
    log.info("estimate_catalog: %d rows in %d tiles (%d reused from %s)", n, len(groups),
             reused, run_dir)

    computed = _compute(tasks, kwargs, progress and len(tasks) > 1)
    return len(groups), reused, done + list(computed)


def _compute(tasks, kwargs, progress):
    """dask.compute with a tqdm bar over tiles (local schedulers and distributed)."""
    import dask

    if not tasks:
        return []
    scheduler = kwargs.get("scheduler")
    if scheduler is not None and not isinstance(scheduler, str):
        # distributed.Client: futures, gathered as they finish
        from distributed import as_completed

        futures = scheduler.compute(tasks)
        bar = _bar(len(tasks), progress)
        try:
            for fut in as_completed(futures):
                fut.result()  # raise the first error
                bar.update(1)
        finally:
            bar.close()
        return scheduler.gather(futures)
    if not progress:
        return dask.compute(*tasks, **kwargs)
    from dask.callbacks import Callback

    bar = _bar(len(tasks), progress)

    class _Progress(Callback):
        def _posttask(self, key, result, dsk, state, id):
            if isinstance(key, str) and key.startswith("acm-tile-"):
                bar.update(1)

    try:
        with _Progress():
            return dask.compute(*tasks, **kwargs)
    finally:
        bar.close()


def _bar(total, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="tile", desc="tiles", disable=not enabled, leave=False)
