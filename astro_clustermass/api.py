"""Top-level functions: run estimators on a catalogue and find estimators."""

from __future__ import annotations

import copy
import warnings

import numpy as np
from astropy.table import Table

from .catalog import (
    ColumnUnitError,
    MissingColumnError,
    check_estimator_name,
    find_column,
)
from .core import EstimatorError, MassEstimate, MassEstimator, write_mass_columns
from .guard import from_ctrl_c, watching_ctrl_c
from .registry import default_registry
from .utils.exceptions import AstroClusterMassUserWarning, EstimatorUnavailable, PluginWarning
from .utils.logger import log

__all__ = ["add_mass_columns", "get_estimator", "list_estimators", "estimate_masses",
           "resolve_estimators", "automatic_estimators", "read_only_copy"]


def get_estimator(name, **options) -> MassEstimator:
    """Build the registered estimator called ``name``.

    Parameters
    ----------
    name : str
        Estimator name, as listed by `list_estimators`.
    **options
        Passed to the estimator's constructor (e.g. ``cosmology=``).
    """
    return default_registry().get(name, **options)


def list_estimators(refresh=False):
    """A table of the available estimators and of plugins that failed to load.

    Columns: name, package, version, inputs, status, description. Listing does not
    import the estimators' implementation modules (nor torch).
    """
    return default_registry(refresh=refresh).table()


def _build(registry, name, events):
    """Estimator ``name``; given ``events`` if its factory takes them.

    An unknown or twice-registered name is the caller's error (raised). An estimator
    that cannot be built (its factory module does not import, its factory fails, its
    photons cannot be read) is that estimator's failure (masked rows naming why), not
    the caller's: the other estimators still run.
    """
    spec = registry.spec(name)
    reading = False
    try:
        if events is not None and spec.accepts("events"):
            reading = True
            photons = events()
            reading = False
            return registry.get(name, events=photons)
        return registry.get(name)
    except BaseException as exc:  # noqa: BLE001 - sys.exit in a factory included
        if from_ctrl_c(exc):
            raise  # the user stops the session
        unbuilt = _Unbuilt(name, exc)
        unbuilt.reads_events = reading
        return unbuilt


class _Unbuilt(MassEstimator):
    """Stands for an estimator whose inputs could not be read; its estimate raises why."""

    inputs = ()

    def __init__(self, name, exc):
        self.name = name
        self.exc = exc
        self.reads_events = False

    def _estimate(self, catalog):  # pragma: no cover - estimate() raises first
        raise self.exc

    def estimate(self, table, column_map=None):
        raise self.exc


class _SharedEvents:
    """The caller's ``events`` as one `EventList`, read when an estimator first asks."""

    def __init__(self, events):
        self.events = events
        self._list = None

    def __call__(self):
        if self._list is None:
            from .io.events import as_event_list

            self._list = as_event_list(self.events)
        return self._list


def resolve_estimators(estimators=None, table=None, column_map=None, events=None):
    """The estimator objects that a call of `add_mass_columns` would run.

    Parameters
    ----------
    estimators : str, `MassEstimator`, or list of them, optional
        Names (built from the registry) or instances (used as they are). None: every
        registered estimator that can run on ``table`` (`automatic_estimators`).
    table : `~astropy.table.Table`, optional
        The catalogue; needed when ``estimators`` is None.
    column_map : dict, optional
        Canonical name -> column name in ``table``.
    events : path-like, sequence of path-like, Table or EventList, optional
        Photons for the estimators, named or chosen here, whose factory takes
        ``events=``: they all get the same `~astro_clustermass.io.events.EventList`
        (files are read once, with the eSASS quality cuts).

    Returns
    -------
    list of `MassEstimator`
    """
    if events is not None and not isinstance(events, _SharedEvents):
        events = _SharedEvents(events)
    if estimators is None:
        if table is None:
            raise TypeError("resolve_estimators needs the table to choose estimators from")
        registry = default_registry()
        return _check_unique([built if built is not None else _build(registry, name, events)
                              for name, built in _automatic(table, column_map,
                                                            events is not None)])
    if isinstance(estimators, (str, MassEstimator)):
        estimators = [estimators]
    out = []
    for item in estimators:
        if isinstance(item, MassEstimator):
            out.append(item)
        elif isinstance(item, str):
            out.append(_build(default_registry(), item, events))
        else:
            raise TypeError(f"estimators must be names or MassEstimator instances, got {item!r}")
    return _check_unique(out)


def automatic_estimators(table, column_map=None, with_events=False):
    """Names of the estimators that `add_mass_columns` chooses when none are named.

    Every registered estimator, except (each skipped with the reason logged, or, for
    one that cannot be built, a `~astro_clustermass.utils.exceptions.PluginWarning`):
    one whose declared input columns ``table`` lacks; one that cannot be built; one
    that says it has nothing to work from (`MassEstimator.unavailable`: e.g. the CNN
    ensemble without event files, images or an image column; or a factory raising
    `~astro_clustermass.utils.exceptions.EstimatorUnavailable`: e.g. an ensemble whose
    weights are not shipped yet). An estimator whose
    factory takes ``events=`` is kept without that last question when ``with_events``.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalogue.
    column_map : dict, optional
        Canonical name -> column name in ``table``.
    with_events : bool
        Whether the run will give event files to the estimators that read them.

    Returns
    -------
    list of str

    Raises
    ------
    EstimatorError
        No estimator can run; the message says why for each.
    """
    return [name for name, _ in _automatic(table, column_map, with_events)]


def _automatic(table, column_map, with_events):
    """``[(name, estimator or None)]`` of `automatic_estimators`; None for an estimator
    still to be built with the photons."""
    registry = default_registry()
    out, skipped = [], {}
    for name in registry.names:
        try:
            spec = registry.spec(name)
        except EstimatorError as exc:
            warnings.warn(f"skipping {exc}", PluginWarning, stacklevel=4)
            skipped[name] = str(exc)
            continue
        canonical = [i for i in spec.inputs if i.isidentifier()]
        missing = [i for i in canonical if _lookup(table, i, column_map) is None]
        if missing:
            skipped[name] = f"the catalogue lacks {', '.join(missing)}"
            log.info(f"skipping estimator {name!r}: {skipped[name]}")
            continue
        if with_events and _accepts(spec, "events"):
            out.append((name, None))
            continue
        built = _build(registry, name, None)
        if isinstance(built, _Unbuilt) and isinstance(built.exc, EstimatorUnavailable):
            skipped[name] = str(built.exc)
            log.info(f"skipping estimator {name!r}: {skipped[name]}")
            continue
        if isinstance(built, _Unbuilt):
            skipped[name] = (f"it could not be built: {type(built.exc).__name__}: "
                             f"{built.exc}")
            warnings.warn(f"skipping estimator {name!r}: {skipped[name]}", PluginWarning,
                          stacklevel=4)
            continue
        why_not = built.unavailable(table, column_map)
        if why_not:
            skipped[name] = why_not
            log.info(f"skipping estimator {name!r}: {why_not}")
            continue
        out.append((name, built))
    if not out:
        listed = "; ".join(f"{name}: {why}" for name, why in skipped.items())
        raise EstimatorError(
            f"no estimator can run on this catalogue ({listed or 'none is registered'}); "
            "name its columns with column_map= (--column-map), or give the event files "
            "or images an estimator needs")
    return out


def _accepts(spec, option):
    try:
        return spec.accepts(option)
    except Exception:  # noqa: BLE001 - the factory does not import: building says why
        return False


def _check_unique(out):
    names = [e.name for e in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise EstimatorError(f"estimator(s) requested twice: {dupes}")
    return out


def _lookup(table, name, column_map):
    try:
        return find_column(table, name, column_map)
    except MissingColumnError:
        return None


def _check_call(table, on_error, timeout):
    if not isinstance(table, Table):
        raise TypeError(f"expected an astropy Table or QTable, got {type(table).__name__}")
    if on_error not in ("mask", "raise"):
        raise ValueError(f"on_error must be 'mask' or 'raise', not {on_error!r}")
    if timeout is not None:
        timeout = float(timeout)
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    return timeout


def read_only_copy(table):
    """A copy of ``table`` that an estimator cannot use to change ``table``.

    Columns share the caller's memory but are read-only (writing into them raises);
    masked columns, whose masks numpy cannot protect, and the metadata are copied.
    Replacing or adding a column changes only this copy.
    """
    out = table.copy(copy_data=False)
    try:
        out.meta = copy.deepcopy(table.meta)
    except Exception:  # noqa: BLE001 - metadata that cannot be deep-copied
        out.meta = dict(table.meta)
    for name in out.colnames:
        col = out[name]
        if getattr(col, "mask", None) is not None and np.ndim(col.mask):
            out[name] = table[name].copy()
        elif isinstance(col, np.ndarray):
            col.setflags(write=False)
    return out


def _run_one(estimator, table, column_map, timeout):
    """One estimator on its own read-only copy of ``table``, checked."""
    if timeout is None:
        result = estimator.estimate(read_only_copy(table), column_map=column_map)
    else:
        from .guard import guarded_estimate

        result = guarded_estimate(estimator, read_only_copy(table), timeout, column_map)
    if not isinstance(result, MassEstimate) or len(result) != len(table):
        raise EstimatorError(
            f"returned {getattr(result, '__len__', lambda: '?')()} rows for a "
            f"table of {len(table)} rows")
    return result


def estimate_masses(table, estimators=None, column_map=None, on_error="mask", events=None,
                    timeout=None):
    """Run estimators on ``table`` and return their `MassEstimate` objects.

    Parameters are those of `add_mass_columns`.

    Returns
    -------
    dict
        Estimator name -> `MassEstimate`.
    """
    timeout = _check_call(table, on_error, timeout)
    with watching_ctrl_c():
        chosen_here = estimators is None
        resolved = resolve_estimators(estimators, table, column_map, events)
        for estimator in resolved:
            check_estimator_name(estimator.name)
        return {estimator.name: _run_checked(estimator, table, column_map, timeout,
                                             on_error, chosen_here)
                for estimator in resolved}


def _run_checked(estimator, table, column_map, timeout, on_error, chosen_here):
    """`_run_one`, its failure masked (or raised) unless the caller is at fault."""
    try:
        return _run_one(estimator, table, column_map, timeout)
    except ColumnUnitError:
        raise  # the caller's input is at fault: say so, always
    except MissingColumnError as exc:
        # A column the caller's estimator needs is missing: the caller's error. An
        # estimator chosen here because its declared inputs are present but that
        # reads another column fails alone.
        if not chosen_here:
            raise
        return _failed(estimator, table, exc, on_error)
    except Warning:
        raise  # a warning the caller's filters turned into an error: theirs to see
    # Anything else (a TypeError included: the table's type was checked above;
    # sys.exit, or a KeyboardInterrupt the estimator raised itself) is the estimator's
    # failure, masked or raised with the estimator's name. Ctrl-C stops the session.
    except BaseException as exc:  # noqa: BLE001
        if from_ctrl_c(exc):
            raise
        return _failed(estimator, table, exc, on_error)


def _failed(estimator, table, exc, on_error):
    """`MassEstimate.failed` for ``estimator``, or the error with its name (raise)."""
    if on_error == "raise":
        if isinstance(exc, EstimatorError) and estimator.name in str(exc):
            raise exc
        raise EstimatorError(f"estimator {estimator.name!r} failed: "
                             f"{type(exc).__name__}: {exc}") from exc
    warnings.warn(f"estimator {estimator.name!r} failed; its columns are masked: "
                  f"{type(exc).__name__}: {exc}", AstroClusterMassUserWarning, stacklevel=3)
    return MassEstimate.failed(estimator.name, len(table), exc)


def add_mass_columns(table, estimators=None, column_map=None, copy=True, on_error="mask",
                     events=None, timeout=None):
    """Estimate M500c with each estimator and add the results as columns.

    For an estimator called NAME the columns are ``M500c_NAME``, ``M500c_NAME_lo``,
    ``M500c_NAME_hi`` (Msun; median and 16th/84th percentiles), ``log10M500c_NAME``,
    ``log10M500c_NAME_err`` (dex), masked where there is no estimate, and
    ``M500c_NAME_flag`` with the reason. Provenance goes to
    ``meta['astro_clustermass'][NAME]``.

    Parameters
    ----------
    table : `~astropy.table.Table` or `~astropy.table.QTable`
        The cluster catalogue; see :ref:`columns` for the column names understood.
    estimators : str, `MassEstimator`, or list of them, optional
        Which estimators to run, by name or as configured instances. Default: every
        registered estimator whose input columns are present.
    column_map : dict, optional
        Canonical name -> column name in ``table``.
    copy : bool
        If True (default) ``table`` is not modified and a new table is returned. If
        False the columns are added to ``table`` itself, once every estimator has
        finished and every column has been built: a call that fails leaves ``table``
        as it was.
    on_error : {'mask', 'raise'}
        What to do when an estimator fails (raises, or returns the wrong shape): mask
        its columns with the error as the reason and log a warning (default), or
        raise `EstimatorError`. Errors in the input (missing column, wrong unit)
        always raise. Estimators never see ``table`` itself: each gets its own
        read-only copy (`read_only_copy`), so none can change it, nor what the next
        one reads.
    events : path-like, sequence of them, or `~astro_clustermass.io.events.EventList`, optional
        X-ray event files (FITS ``EVENTS`` extensions, eSASS layout) or an event list in
        memory, for the estimators named (or chosen) by name that read photons: the CNN
        ensemble builds each cluster's energy-band images from them at its ``RA``/``DEC``.
        The files are read once, into one `~astro_clustermass.io.events.EventList`
        shared by those estimators. Estimators passed as instances keep their own
        configuration.
    timeout : float, optional
        Time limit per estimator [s]: each then runs in a child process (see
        `astro_clustermass.guard.guarded_estimate`), and one that runs out of time, or
        whose process dies, is treated as failed (``on_error``). None: no limit. The
        command line's ``--timeout``.

    Returns
    -------
    table : same class as ``table``
    """
    results = estimate_masses(table, estimators, column_map, on_error, events, timeout)
    if copy:
        out = table.copy(copy_data=True)
        for name in list(results):  # each result is let go once written (memory)
            write_mass_columns(out, results.pop(name), copy=False)
        return out
    # Build every column on a shallow copy first; only then touch the caller's table.
    staged = table.copy(copy_data=False)
    staged.meta = {}
    for name in list(results):
        write_mass_columns(staged, results.pop(name), copy=False)
    table.add_columns([staged[name] for name in staged.colnames
                       if name not in table.colnames])
    if "astro_clustermass" in staged.meta:
        table.meta.setdefault("astro_clustermass", {}).update(staged.meta["astro_clustermass"])
    return table
