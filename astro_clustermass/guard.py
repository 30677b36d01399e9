"""Estimators under a time limit: each runs in a child process that can be stopped.

A plugin that hangs, or kills its process, costs masked rows with a reason instead of a
hung or crashed session. `astro_clustermass.estimate_masses` and
`astro_clustermass.add_mass_columns` use it when given ``timeout=``; so does every tile
of `astro_clustermass.parallel.estimate_catalog`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
import traceback

from .core import EstimatorError

__all__ = ["EstimatorTimeout", "guarded_estimate"]

log = logging.getLogger("astro_clustermass")


class EstimatorTimeout(EstimatorError):
    """An estimator did not finish within its time limit."""


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
