"""Top-level functions: run estimators on a catalogue and find estimators."""

from __future__ import annotations

import logging

from astropy.table import Table

from .catalog import ColumnUnitError, MissingColumnError, find_column
from .core import EstimatorError, MassEstimate, MassEstimator, write_mass_columns
from .registry import default_registry

__all__ = ["add_mass_columns", "get_estimator", "list_estimators", "estimate_masses",
           "resolve_estimators"]

log = logging.getLogger("astro_clustermass")


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

    Photons that cannot be read are that estimator's failure (masked rows naming the
    file), not the caller's: the other estimators still run.
    """
    if events is not None and registry.spec(name).accepts("events"):
        try:
            photons = events()
        except (OSError, KeyError, ValueError, TypeError) as exc:
            return _Unbuilt(name, exc)
        return registry.get(name, events=photons)
    return registry.get(name)


class _Unbuilt(MassEstimator):
    """Stands for an estimator whose inputs could not be read; its estimate raises why."""

    inputs = ()

    def __init__(self, name, exc):
        self.name = name
        self.exc = exc

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
        registered estimator whose canonical input columns ``table`` has.
    table : `~astropy.table.Table`, optional
        The catalogue; needed when ``estimators`` is None.
    column_map : dict, optional
        Canonical name -> column name in ``table``.
    events : path-like, sequence of them, `~astropy.table.Table` or `~astro_clustermass.io.events.EventList`, optional
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
        out = []
        for name in registry.names:
            try:
                spec = registry.spec(name)
            except EstimatorError as exc:
                log.warning("skipping %s", exc)
                continue
            canonical = [i for i in spec.inputs if i.isidentifier()]
            missing = [i for i in canonical if _lookup(table, i, column_map) is None]
            if missing:
                log.info("skipping estimator %r: catalogue lacks %s", name, ", ".join(missing))
                continue
            try:
                out.append(_build(registry, name, events))
            except Exception as exc:  # not explicitly asked for: skip, say why
                log.warning("skipping estimator %r: it could not be built: %s: %s",
                            name, type(exc).__name__, exc)
        return _check_unique(out)
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
    results = {}
    for estimator in resolve_estimators(estimators, table, column_map, events):
        try:
            if timeout is None:
                result = estimator.estimate(table, column_map=column_map)
            else:
                from .guard import guarded_estimate

                result = guarded_estimate(estimator, table, timeout, column_map)
            if not isinstance(result, MassEstimate) or len(result) != len(table):
                raise EstimatorError(
                    f"returned {getattr(result, '__len__', lambda: '?')()} rows for a "
                    f"table of {len(table)} rows")
        except (MissingColumnError, ColumnUnitError):
            raise  # the caller's input is at fault: say so, always
        # Anything else (a TypeError included: the table's type was checked above) is
        # the estimator's failure, masked or raised with the estimator's name.
        except Exception as exc:
            if on_error == "raise":
                if isinstance(exc, EstimatorError) and estimator.name in str(exc):
                    raise
                raise EstimatorError(f"estimator {estimator.name!r} failed: {exc}") from exc
            log.warning("estimator %r failed; its columns are masked: %s: %s",
                        estimator.name, type(exc).__name__, exc)
            result = MassEstimate.failed(estimator.name, len(table), exc)
        results[estimator.name] = result
    return results


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
        If True (default) ``table`` is not modified and a new table is returned.
    on_error : {'mask', 'raise'}
        What to do when an estimator fails (raises, or returns the wrong shape): mask
        its columns with the error as the reason and log a warning (default), or
        raise `EstimatorError`. Errors in the input (missing column, wrong unit)
        always raise.
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
        whose process dies, is treated as failed (``on_error``). None: no limit.

    Returns
    -------
    table : same class as ``table``
    """
    results = estimate_masses(table, estimators, column_map, on_error, events, timeout)
    out = table.copy(copy_data=True) if copy else table
    for estimate in results.values():
        write_mass_columns(out, estimate, copy=False)
    return out
