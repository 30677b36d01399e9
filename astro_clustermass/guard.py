"""Estimators under a time limit: each runs in a child process that can be stopped.

A plugin that hangs, or kills its process, costs masked rows with a reason instead of a
hung or crashed session. `astro_clustermass.estimate_masses` and
`astro_clustermass.add_mass_columns` use it when given ``timeout=``; so does every tile
of `astro_clustermass.parallel.estimate_catalog`.

Plugin code that runs in this process is contained too: imports and hooks in a helper
thread (`contained_call`), and a `KeyboardInterrupt` that an estimator raises itself is
its failure, while the user's Ctrl-C stops the session (`watching_ctrl_c`,
`from_ctrl_c`).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import traceback
import warnings
from contextlib import contextmanager

from astropy import config as _config

from .utils.exceptions import AstroClusterMassUserWarning, EstimatorError
from .utils.logger import log

__all__ = ["EstimatorTimeout", "guarded_estimate", "contained_call", "plugin_import_timeout",
           "watching_ctrl_c", "from_ctrl_c"]


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


#: Default time limit [s] for importing a plugin (or an estimator's factory module).
DEFAULT_PLUGIN_IMPORT_TIMEOUT = 60.0


class Conf(_config.ConfigNamespace):
    """Time limits of plugin code (``[guard]`` in astro_clustermass.cfg)."""

    plugin_timeout = _config.ConfigItem(
        DEFAULT_PLUGIN_IMPORT_TIMEOUT, "Time limit [s] for importing a plugin or an "
        "estimator's factory module (0: none).")


conf = Conf()


def plugin_import_timeout():
    """Time limit [s] for importing a plugin or a factory module; None for no limit.

    The environment variable ``ASTRO_CLUSTERMASS_PLUGIN_TIMEOUT`` wins over
    ``astro_clustermass.guard.conf.plugin_timeout`` (default
    `DEFAULT_PLUGIN_IMPORT_TIMEOUT`); ``0`` or ``none`` means no limit.
    """
    text = os.environ.get("ASTRO_CLUSTERMASS_PLUGIN_TIMEOUT")
    if text is None:
        value = conf.plugin_timeout
    elif text.strip().lower() in ("", "none", "off"):
        return None
    else:
        try:
            value = float(text)
        except ValueError:
            warnings.warn(f"ASTRO_CLUSTERMASS_PLUGIN_TIMEOUT={text!r} is not a number of "
                          f"seconds; using {DEFAULT_PLUGIN_IMPORT_TIMEOUT:g} s",
                          AstroClusterMassUserWarning, stacklevel=2)
            value = DEFAULT_PLUGIN_IMPORT_TIMEOUT
    return float(value) if value and value > 0 else None


def contained_call(fn, what, timeout=None):
    """``fn()`` in a helper thread: its escapes and hangs become `EstimatorError`.

    For third-party code that runs in this process (importing a plugin, calling its
    hook, importing an estimator's factory module). An `Exception` it raises is
    re-raised as it is; any other `BaseException` (``sys.exit``, a `KeyboardInterrupt`
    or `GeneratorExit` raised by the code itself) becomes an `EstimatorError` naming
    ``what``. A real Ctrl-C is delivered to the main thread, which is waiting here, and
    interrupts the caller as usual. Code that does not finish within ``timeout`` s is
    left running in its (daemon) thread and `EstimatorTimeout` is raised: Python cannot
    stop a thread, and an import that never finishes keeps its module's import lock.

    Parameters
    ----------
    fn : callable
        Called without arguments.
    what : str
        What is being done, for the messages (e.g. ``"importing plugin 'x'"``).
    timeout : float, optional
        Time limit [s]; None: no limit.
    """
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - contained, reported below
            box["error"] = exc

    if timeout is None and threading.current_thread() is not threading.main_thread():
        target()  # no limit to enforce: no helper thread needed
    else:
        thread = threading.Thread(target=target, name="acm-contained", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            raise EstimatorTimeout(f"{what} did not finish within {timeout:g} s (set "
                                   "ASTRO_CLUSTERMASS_PLUGIN_TIMEOUT to change the limit)")
    if "error" in box:
        exc = box.pop("error")
        if isinstance(exc, Exception):
            raise exc
        raise EstimatorError(f"{what} raised {type(exc).__name__}"
                             + (f"({exc})" if str(exc) else "")) from None
    return box.get("value")


# -- Ctrl-C or a plugin's own KeyboardInterrupt -----------------------------------------
_ctrl_c = {"depth": 0, "seen": False, "known": False}


def _note_sigint(previous):
    def handler(signum, frame):
        _ctrl_c["seen"] = True
        previous(signum, frame)  # Python's own handler raises KeyboardInterrupt
    return handler


@contextmanager
def watching_ctrl_c():
    """While inside (in the main thread), remember whether SIGINT arrived.

    Python turns Ctrl-C (SIGINT) into a `KeyboardInterrupt` in the main thread by calling
    its SIGINT handler; inside, that handler first records that the signal came, then
    does what it did before. `from_ctrl_c` then tells a real Ctrl-C from a
    `KeyboardInterrupt` that code raised itself. Nested uses share one record.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # no KeyboardInterrupt in this thread is a Ctrl-C (see from_ctrl_c)
        return
    if _ctrl_c["depth"]:  # nested: the outer one watches
        _ctrl_c["depth"] += 1
        try:
            yield
        finally:
            _ctrl_c["depth"] -= 1
        return
    previous = signal.getsignal(signal.SIGINT)
    installed = False
    if callable(previous):
        try:
            signal.signal(signal.SIGINT, _note_sigint(previous))
            installed = True
        except (ValueError, OSError):  # pragma: no cover - embedded interpreters
            pass
    # SIG_IGN or SIG_DFL: Ctrl-C never raises KeyboardInterrupt here (ignored, or the
    # process dies). None (not installed from Python) or a failure: cannot tell.
    _ctrl_c.update(depth=1, seen=False,
                   known=installed or previous in (signal.SIG_IGN, signal.SIG_DFL))
    try:
        yield
    finally:
        _ctrl_c["depth"] = 0
        if installed:
            signal.signal(signal.SIGINT, previous)


def from_ctrl_c(exc):
    """Whether the `KeyboardInterrupt` ``exc`` may be the user's Ctrl-C (stop the run) and
    not one that an estimator raised itself (its failure).

    True unless it is certain that no SIGINT came: in a thread other than the main
    thread (Python raises Ctrl-C's `KeyboardInterrupt` only in the main thread), or in
    the main thread inside `watching_ctrl_c` when no SIGINT arrived there.
    """
    if not isinstance(exc, KeyboardInterrupt):
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    if not _ctrl_c["depth"] or not _ctrl_c["known"]:
        return True
    return _ctrl_c["seen"]
