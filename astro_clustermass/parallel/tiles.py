"""Sky tiles and the work of one tile: its clusters, its photons, its result file.

The sky is cut into tiles (`TileGrid`); a tile task (`run_tile`) reads the photons of
the tile plus a margin straight into an `~astro_clustermass.io.events.EventList`
(only the event files that overlap it, see
`~astro_clustermass.io.event_index.EventFileIndex`), runs every estimator on the tile's
clusters through `astro_clustermass.estimate_masses`, and writes the masses to a
result file (numpy ``.npz``, no pickles) atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy import units as u

from ..api import automatic_estimators, estimate_masses
from ..core import EstimatorError, EstimatorSpec, MassEstimator
from ..io.atomic import atomic_write
from ..io.events import EventList
from ..io.locks import RunLock, RunLockError

__all__ = ["TileGrid", "DEFAULT_TILE_SIZE", "DEFAULT_MARGIN"]


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


def _items(estimators, table, column_map, events):
    """Resolve the user's estimators into `_Item` objects (and check them)."""
    from ..registry import default_registry

    if estimators is None:
        estimators = automatic_estimators(table, column_map, with_events=bool(events))
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
        wants = bool(events) and spec.accepts("events")
        items.append(_Item(spec.name, spec=spec, options=dict(options), wants_events=wants))
    names = [i.name for i in items]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise EstimatorError(f"estimator(s) requested twice: {dupes}")
    return items


# -- the tile task ---------------------------------------------------------------------------------
def _tile_file(run_dir, tile):
    return Path(run_dir) / f"tile_{tile:+07d}.npz"


@dataclass
class _WriteGuard:
    """What a tile task checks so that it never outlives its run.

    ``lock``/``token``: the run's lock file and its token; a tile result is written only
    while the lock holds the token (a driver killed with SIGKILL leaves a stale lock
    that the next run takes over, or none). ``driver``: the driver's pid when the
    workers are its child processes (dask's ``processes`` scheduler): on Linux the
    worker asks the kernel to kill it when the driver dies (``PR_SET_PDEATHSIG``).
    """

    lock: Path
    token: str
    driver: int | None = None

    def _orphaned(self):
        return (self.driver is not None and os.getpid() != self.driver
                and os.getppid() != self.driver)

    def enter_worker(self):
        """Called at the start of a tile task."""
        if self._orphaned():
            raise RunLockError(f"the run's driver (pid {self.driver}) is gone; stopping")
        if self.driver is not None and os.getpid() != self.driver:
            _die_with_parent()

    def before_write(self):
        """Called before a tile result is moved into place."""
        if self._orphaned():
            raise RunLockError(f"the run's driver (pid {self.driver}) is gone; not writing")
        RunLock.check(self.lock, self.token)


_DEATH_SIGNAL_SET = False


def _die_with_parent():
    """Linux: SIGKILL this process when its parent dies (once per process)."""
    global _DEATH_SIGNAL_SET
    if _DEATH_SIGNAL_SET or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        _DEATH_SIGNAL_SET = True
    except (OSError, AttributeError):  # pragma: no cover - no prctl: the lock check remains
        pass


def _run_tile(tile, rows, table, items, event_paths, box, run_dir, column_map, on_error,
              timeout, guard=None):
    """Estimate the masses of one tile's clusters and write them to its result file."""
    out_path = _tile_file(run_dir, tile)
    if guard is not None:
        guard.enter_worker()
    events = None
    if any(i.wants_events for i in items) and event_paths:
        events = EventList.read(event_paths, box=box)
    estimators = [i.build(events=events) for i in items]
    results = estimate_masses(table, estimators, column_map, on_error, timeout=timeout)
    del events
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
        if guard is not None:
            guard.before_write()
    atomic_write(out_path, writer)
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
