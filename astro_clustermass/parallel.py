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

import logging
import multiprocessing
import os
import time
import traceback

import numpy as np

from .api import _failed_estimate, _resolve
from .catalog import ColumnUnitError, MissingColumnError
from .core import EstimatorError, MassEstimate, write_mass_columns

__all__ = ["EstimatorTimeout", "guarded_estimate", "estimate_masses_guarded",
           "add_mass_columns_guarded"]

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
        name = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
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
        `multiprocessing` start method; default ``"fork"`` where available (the
        estimator and table are inherited, not pickled), else ``"spawn"``.

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


_ = os
