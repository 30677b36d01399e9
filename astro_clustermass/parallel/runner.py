"""Catalogue-scale mass estimation on Dask: `estimate_catalog`.

Event files -> energy-band images -> every requested estimator -> mass columns, for
catalogues of any size. The sky is cut into tiles (`~astro_clustermass.parallel.tiles.TileGrid`);
every tile is one `dask.delayed` task that reads only the events that fall within the
tile plus a margin of half an EBI (600") and a little more, runs the estimators on the
clusters of that tile, and writes its result atomically to a work directory. The
final table is assembled in the original row order and written atomically. A run that
was interrupted resumes: tiles whose result file exists (for the same catalogue,
estimators, parameters and event files) are not recomputed. It runs on dask's local
schedulers (``"threads"``, ``"processes"``, ``"synchronous"``), on a
`dask.distributed.Client` (e.g. of a ``LocalCluster``) or on any scheduler address
(``"tcp://host:8786"``).

See :ref:`parallel` for the design and the measured scaling.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u

from ..catalog import CatalogView, ColumnUnitError, MissingColumnError
from ..core import EstimatorError, MassEstimate, write_mass_columns
from ..io.atomic import atomic_write_text, cleanup_on_signals
from ..io.event_index import EventFileIndex
from ..io.locks import RunLock
from ..utils.exceptions import AstroClusterMassUserWarning, InputDataWarning
from ..utils.logger import log
from ..utils.optional import require
from .tiles import (
    _EMPTY_BOX,
    DEFAULT_MARGIN,
    DEFAULT_TILE_SIZE,
    TileGrid,
    _items,
    _plain,
    _read_tile,
    _run_tile,
    _table_hash,
    _tile_file,
    _WriteGuard,
)

__all__ = ["estimate_catalog"]


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
            if s in _PROCESS_SCHEDULERS:
                kw["chunksize"] = 1  # a tile is a big task: not six to one worker
            return kw, None, None
        require("distributed", feature="a Dask scheduler for catalogue-scale runs")
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
        factory takes ``events=`` gets, in every tile, an
        `~astro_clustermass.io.events.EventList` of the photons of that tile plus
        ``margin``, read from the overlapping event files with the eSASS quality cuts
        (e.g. ``cnn-ensemble``, which builds its energy-band images from them).
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
        `~astro_clustermass.guard.guarded_estimate`).
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
    from ..esass import check_writable, read_catalog, write_table

    t_start = time.monotonic()
    grid = TileGrid(tile_size)
    if output is not None:  # before any work: a bad output is said now, not after the tiles
        check_writable(output, overwrite=overwrite)
    if isinstance(catalog, (str, os.PathLike)):
        catalog = read_catalog(catalog)
    from astropy.table import Table

    if not isinstance(catalog, Table):
        raise TypeError(f"expected an astropy Table or QTable, got {type(catalog).__name__}")
    if on_error not in ("mask", "raise"):
        raise ValueError(f"on_error must be 'mask' or 'raise', not {on_error!r}")
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
        warnings.warn(f"estimators {[i.name for i in items if i.wants_events]} read events "
                      "but no event files were given", AstroClusterMassUserWarning,
                      stacklevel=2)

    n = len(catalog)
    try:
        pos = CatalogView(catalog, optional=("RA", "DEC"), column_map=column_map)
        ra, dec = pos.get("RA"), pos.get("DEC")
    except (MissingColumnError, ColumnUnitError) as exc:
        # Positions only place rows on tiles; estimators that need them check them.
        warnings.warn(f"estimate_catalog: no usable positions ({exc}); all rows form one "
                      "task", InputDataWarning, stacklevel=2)
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
    Path(workdir).mkdir(parents=True, exist_ok=True)
    if cleanup is None:
        cleanup = output is not None or temporary
    if temporary and not cleanup:
        log.info("tile results kept in %s", workdir)
    # One run per work directory (and so per default output): a second is refused,
    # instead of the two deleting each other's tile results.
    with RunLock(Path(workdir) / LOCK_NAME) as lock:
        return _locked_run(catalog, items, events, grid, tiles, run_dir, run_hash, workdir,
                           margin_deg, column_map, on_error, timeout, resume, scheduler,
                           workers, progress, key, lock, output, overwrite, cleanup,
                           own_workdir, t_start, write_table)


#: The lock file of a run, in its work directory (`~astro_clustermass.io.locks.RunLock`).
LOCK_NAME = "run.lock"


def _locked_run(catalog, items, events, grid, tiles, run_dir, run_hash, workdir, margin_deg,
                column_map, on_error, timeout, resume, scheduler, workers, progress, key,
                lock, output, overwrite, cleanup, own_workdir, t_start, write_table):
    """The part of `estimate_catalog` that runs under the work directory's lock."""
    n = len(catalog)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "manifest.json", json.dumps(_plain(key), indent=1))
    kwargs, client, cluster = _scheduler_kwargs(scheduler, workers)
    guard = _WriteGuard(lock.path, lock.token,
                        os.getpid() if kwargs.get("scheduler") in _PROCESS_SCHEDULERS else None)
    try:
        with cleanup_on_signals():
            paths = _run_tasks(catalog, items, events, grid, tiles, run_dir, run_hash,
                               workdir, margin_deg, column_map, on_error, timeout, resume,
                               kwargs, progress, guard)
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


#: dask's local schedulers whose workers are child processes of the driver.
_PROCESS_SCHEDULERS = ("processes", "multiprocessing")


def _run_tasks(catalog, items, events, grid, tiles, run_dir, run_hash, workdir, margin_deg,
               column_map, on_error, timeout, resume, kwargs, progress, guard):
    """Index the event files, build one task per tile not done yet, and run them."""
    require("dask", feature="catalogue-scale runs (astro_clustermass.parallel)")
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
            guard, dask_key_name=f"acm-tile-{run_hash[:8]}-{tile}"))
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
