"""Top-level functions: run estimators on a catalogue and find estimators."""

from __future__ import annotations

import logging

import numpy as np
from astropy.table import Table

from .catalog import ColumnUnitError, MissingColumnError, find_column
from .core import EstimatorError, MassEstimate, MassEstimator, write_mass_columns
from .registry import default_registry

__all__ = ["add_mass_columns", "get_estimator", "list_estimators", "estimate_masses"]

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
    """Estimator ``name``; given ``events`` if its factory takes them."""
    if events is not None and registry.spec(name).accepts("events"):
        return registry.get(name, events=events)
    return registry.get(name)


def _resolve(estimators, table, column_map, events=None):
    """Turn names / instances into estimator objects; None means all that can run.

    Estimators named here (or chosen automatically) whose factory takes ``events=``
    are built with ``events`` when it is given.
    """
    if estimators is None:
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


def _failed_estimate(estimator, n, exc):
    reason = f"estimator failed: {type(exc).__name__}: {exc}"[:300]
    return MassEstimate(estimator.name, np.full(n, np.nan), np.full(n, np.nan),
                        np.zeros(n, bool), np.full(n, reason),
                        meta={"name": estimator.name, "error": reason})


def estimate_masses(table, estimators=None, column_map=None, on_error="mask", events=None):
    """Run estimators on ``table`` and return their `MassEstimate` objects.

    Parameters are those of `add_mass_columns`.

    Returns
    -------
    dict
        Estimator name -> `MassEstimate`.
    """
    if not isinstance(table, Table):
        raise TypeError(f"expected an astropy Table or QTable, got {type(table).__name__}")
    if on_error not in ("mask", "raise"):
        raise ValueError(f"on_error must be 'mask' or 'raise', not {on_error!r}")
    results = {}
    for estimator in _resolve(estimators, table, column_map, events):
        try:
            result = estimator.estimate(table, column_map=column_map)
            if len(result) != len(table):
                raise EstimatorError(
                    f"returned {len(result)} rows for a table of {len(table)} rows")
        except (MissingColumnError, ColumnUnitError):
            raise  # the caller's input is at fault: say so, always
        # Anything else (a TypeError included: the table's type was checked above) is
        # the estimator's failure, masked or raised with the estimator's name.
        except Exception as exc:
            if on_error == "raise":
                raise EstimatorError(f"estimator {estimator.name!r} failed: {exc}") from exc
            log.warning("estimator %r failed; its columns are masked: %s: %s",
                        estimator.name, type(exc).__name__, exc)
            result = _failed_estimate(estimator, len(table), exc)
        results[estimator.name] = result
    return results


def add_mass_columns(table, estimators=None, column_map=None, copy=True, on_error="mask",
                     events=None):
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
    events : path-like, sequence of them, or `~astro_clustermass.ebi.EventList`, optional
        X-ray event files (FITS ``EVENTS`` extensions, eSASS layout) or an event list in
        memory, for the estimators named (or chosen) by name that read photons: the CNN
        ensemble builds each cluster's energy-band images from them at its ``RA``/``DEC``.
        Estimators passed as instances keep their own configuration.

    Returns
    -------
    table : same class as ``table``
    """
    results = estimate_masses(table, estimators, column_map, on_error, events)
    out = table.copy(copy_data=True) if copy else table
    for estimate in results.values():
        write_mass_columns(out, estimate, copy=False)
    return out
