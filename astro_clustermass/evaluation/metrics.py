"""Accuracy and calibration metrics of mass estimators against true masses.

Everything here is numpy/astropy only (no torch, no matplotlib).

For an estimator NAME the catalogue holds (see `astro_clustermass.catalog.column_names`)
``log10M500c_NAME`` and ``log10M500c_NAME_err`` [dex]: a Gaussian in log10 M500c per
row. For every row with a true mass, the residual is

    d = log10M500c_NAME - log10(M500c_true / Msun)   [dex]

and the metrics of a set of rows are (all in dex unless said otherwise):

``bias``, ``bias_err``
    mean of d, and its standard error std(d) / sqrt(n).
``median``
    median of d.
``scatter``, ``scatter_err``
    sample standard deviation of d (ddof = 1) and its Gaussian standard error
    scatter / sqrt(2 (n - 1)).
``scatter_nmad``
    the robust scatter: 1.4826 x the median absolute deviation of d from its median
    (equal to the standard deviation for Gaussian residuals, insensitive to outliers).
``mean_sigma``
    mean predicted sigma (the seeds' <sigma_*>).
``pull_std``
    standard deviation of d / sigma (1 for honest Gaussian errors).
``coverage68``, ``coverage95``
    fraction of rows whose true mass lies in the central 68% (95%) interval of the
    predicted Gaussian, i.e. ``abs(d) < 0.9945 sigma`` (1.960 sigma); the 68% interval is the
    16th-84th percentile range written as ``M500c_NAME_lo`` / ``_hi``.
``pit``
    histogram (counts in ``pit_bins`` equal bins of [0, 1]) of the probability integral
    transform Phi((log10 M_true - log10M500c_NAME) / sigma); flat for honest errors.

Rows enter when they pass the selection, have a finite positive true mass, and the
estimator has a finite mean and a positive finite sigma (masked rows have none). The
rows of a selection that lack an estimate are counted in ``n_no_estimate``.
"""

from __future__ import annotations

import datetime
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
from astropy import units as u
from astropy.table import QTable, Table
from astropy.utils.masked import Masked
from scipy.special import ndtr, ndtri

from ..catalog import (
    CANONICAL_COLUMNS,
    EFEDS_HQ_SELECTION,
    EFEDS_SELECTION,
    column_names,
    find_column,  # noqa: F401 (re-exported)
    selection_mask,
)
from ..utils.exceptions import InputDataWarning
from ..utils.logger import log

__all__ = [
    "DEFAULT_SELECTIONS", "DEFAULT_MASS_BINS", "DEFAULT_Z_BINS", "NMAD_FACTOR",
    "EvaluationData", "EstimatorColumns", "find_estimators", "collect", "evaluate",
    "evaluate_data",
    "residual_metrics", "coverage_curve",
]


#: Selections evaluated by default: name -> condition (seed 000 sect. 2.2 and 4).
#: ``all`` keeps every row.
DEFAULT_SELECTIONS = {
    "all": "",
    "EXT_LIKE>6 & DET_LIKE>5": EFEDS_SELECTION,
    "EXT_LIKE>60 & DET_LIKE>60": EFEDS_HQ_SELECTION,
}
#: Bin edges in log10(M500c_true / Msun) (seed 000 Fig. 5 uses 0.5-dex bins).
DEFAULT_MASS_BINS = (13.0, 13.5, 14.0, 14.5, 15.0, 15.5)
#: Bin edges in redshift.
DEFAULT_Z_BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5)
#: 1 / Phi^-1(3/4): turns a median absolute deviation into a Gaussian sigma.
NMAD_FACTOR = 1.4826
#: Half-widths, in sigma, of the central 68% and 95% intervals of a Gaussian.
_Z68 = float(ndtri(0.84))
_Z95 = float(ndtri(0.975))

_METRIC_UNITS = {
    "bias": u.dex, "bias_err": u.dex, "median": u.dex, "scatter": u.dex,
    "scatter_err": u.dex, "scatter_nmad": u.dex, "mean_sigma": u.dex,
    "pull_std": u.dimensionless_unscaled, "coverage68": u.dimensionless_unscaled,
    "coverage95": u.dimensionless_unscaled,
}

_DESCRIPTIONS = {
    "estimator": "estimator name (columns log10M500c_NAME, log10M500c_NAME_err)",
    "selection": "selection name (see meta['selections'])",
    "binning": "'all' (no binning), 'log10M' (true log10 M500c/Msun) or 'z'",
    "bin_lo": "lower bin edge (inclusive); NaN for binning='all'",
    "bin_hi": "upper bin edge (exclusive); NaN for binning='all'",
    "n": "rows used (in selection and bin, with a true mass and an estimate)",
    "n_no_estimate": "rows in selection and bin with a true mass but no estimate (masked)",
    "bias": "mean of log10 M_est - log10 M_true",
    "bias_err": "standard error of the bias, std / sqrt(n)",
    "median": "median of log10 M_est - log10 M_true",
    "scatter": "standard deviation (ddof=1) of log10 M_est - log10 M_true",
    "scatter_err": "Gaussian standard error of the scatter, scatter / sqrt(2 (n - 1))",
    "scatter_nmad": "robust scatter: 1.4826 x median absolute deviation from the median",
    "mean_sigma": "mean predicted sigma of log10 M",
    "pull_std": "standard deviation of (log10 M_est - log10 M_true) / sigma",
    "coverage68": "fraction of true masses inside the central 68% interval (16-84th pct)",
    "coverage95": "fraction of true masses inside the central 95% interval",
    "pit": "PIT histogram: counts of Phi((log10 M_true - mean) / sigma) in equal bins of [0, 1]",
}


# -- columns --------------------------------------------------------------------------
@dataclass(frozen=True)
class EstimatorColumns:
    """Where the estimate of one estimator lives in a catalogue.

    ``kind`` is ``'log10'`` (``log10M500c_NAME`` and ``_err``) or ``'percentiles'``
    (only ``M500c_NAME`` with ``_lo``/``_hi``: mean and sigma in dex are recovered as
    log10 of the median and half the log10 16-84th percentile range / 0.9945).
    """

    name: str
    kind: str
    columns: tuple


def find_estimators(catalog):
    """Estimators whose output columns are in ``catalog``, by the naming convention.

    Returns
    -------
    list of `EstimatorColumns`, in column order.
    """
    found, seen = [], set()
    names = set(catalog.colnames)
    for col in catalog.colnames:
        m = re.fullmatch(r"log10M500c_(.+)", col)
        if m and not col.endswith("_err"):
            est = m.group(1)
            cn = column_names(est)
            if cn["log10_err"] in names and est not in seen:
                found.append(EstimatorColumns(est, "log10", (cn["log10"], cn["log10_err"])))
                seen.add(est)
            continue
        m = re.fullmatch(r"M500c_(.+)", col)
        if m and not col.endswith(("_lo", "_hi", "_flag")):
            est = m.group(1)
            cn = column_names(est)
            if (est not in seen and cn["log10"] not in names and cn["mass_lo"] in names
                    and cn["mass_hi"] in names):
                found.append(EstimatorColumns(est, "percentiles",
                                              (cn["mass"], cn["mass_lo"], cn["mass_hi"])))
                seen.add(est)
    return found


def _plain_values(col, unit=None, what=""):
    """Float array of a column (NaN where masked), converted to ``unit`` if it has one."""
    mask = np.asarray(getattr(col, "mask", False), dtype=bool)
    cunit = getattr(col, "unit", None)
    raw = np.asarray(getattr(col, "value", col))
    if raw.dtype.kind not in "biuf":
        raise ValueError(f"column {what!r} holds {raw.dtype} values, not numbers")
    values = np.array(raw, dtype=float, copy=True)
    if values.ndim != 1:
        raise ValueError(f"column {what!r} has shape {values.shape}; expected one value per row")
    if unit is not None and cunit is not None and u.Unit(cunit) != u.dimensionless_unscaled:
        try:
            values = (values * u.Unit(cunit)).to_value(unit)
        except u.UnitConversionError:
            raise u.UnitsError(f"column {what!r} has unit {cunit}, expected {unit}") from None
    if mask.ndim == 0:
        mask = np.full(len(values), bool(mask))
    values[mask] = np.nan
    return values


def _estimate_arrays(catalog, est):
    """(mean, sigma) of log10 M500c [dex] for `EstimatorColumns` ``est``; NaN if absent."""
    if est.kind == "log10":
        mu = _plain_values(catalog[est.columns[0]], None, est.columns[0])
        sig = _plain_values(catalog[est.columns[1]], None, est.columns[1])
    else:
        with np.errstate(all="ignore"):
            med, lo, hi = (np.log10(_plain_values(catalog[c], u.Msun, c)) for c in est.columns)
        mu = med
        sig = (hi - lo) / (2.0 * _Z68)
    ok = np.isfinite(mu) & np.isfinite(sig) & (sig > 0)
    return np.where(ok, mu, np.nan), np.where(ok, sig, np.nan)


def _true_log10_mass(catalog, true_mass):
    """log10(M_true / Msun) of every row (NaN where missing or not positive)."""
    colname = true_mass if true_mass in catalog.colnames else find_column(catalog, true_mass)
    if colname is None:
        raise KeyError(
            f"true-mass column {true_mass!r} is not in the catalogue (nor one of its aliases "
            f"{CANONICAL_COLUMNS['M500c'].aliases}); columns: {', '.join(catalog.colnames)}")
    col = catalog[colname]
    unit = getattr(col, "unit", None)
    unit = None if unit is None else u.Unit(unit)
    if unit is not None and (isinstance(unit, u.LogUnit) or unit == u.dex
                             or getattr(unit, "physical_unit", None) is not None):
        return _plain_values(col, None, colname), colname
    values = _plain_values(col, u.Msun if unit is not None else None, colname)
    finite = values[np.isfinite(values)]
    if unit is None:
        if finite.size and np.nanmedian(finite) < 100:
            raise ValueError(
                f"true-mass column {colname!r} has no unit and values like "
                f"{np.nanmedian(finite):.3g}: it looks like log10 masses. Give it the unit "
                "'dex' (log10 Msun) or use a column of masses in Msun.")
        log.info(f"true-mass column {colname!r} has no unit; assuming Msun")
    with np.errstate(all="ignore"):
        out = np.log10(values)
    out[~(values > 0)] = np.nan
    return out, colname


# -- collected arrays -----------------------------------------------------------------
@dataclass
class EvaluationData:
    """The arrays that metrics and plots are computed from.

    Attributes
    ----------
    log10_true : array (N,)
        log10(M500c_true / Msun); NaN where missing.
    z : array (N,) or None
        Redshift (None if the catalogue has no redshift column).
    estimates : dict
        Estimator name -> (mean, sigma) arrays (N,) of log10 M500c [dex]; NaN where the
        row has no estimate.
    selections : dict
        Selection name -> boolean mask (N,); only selections that could be applied.
    selection_text : dict
        Selection name -> its condition string (or 'mask').
    notes : list of str
        Selections skipped and other remarks.
    true_mass_column : str
    """

    log10_true: np.ndarray
    z: np.ndarray | None
    estimates: dict
    selections: dict
    selection_text: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    true_mass_column: str = "M500c"

    def usable(self, estimator, selection):
        """Rows of ``selection`` with a true mass and an estimate from ``estimator``."""
        mu, sig = self.estimates[estimator]
        return self.selections[selection] & np.isfinite(self.log10_true) & np.isfinite(mu)

    def residuals(self, estimator, selection):
        """(true log10 M, residual d, sigma, z or None) of the usable rows [dex]."""
        ok = self.usable(estimator, selection)
        mu, sig = self.estimates[estimator]
        z = None if self.z is None else self.z[ok]
        return self.log10_true[ok], mu[ok] - self.log10_true[ok], sig[ok], z


def collect(catalog, estimators=None, true_mass="M500c", selections=None):
    """Read truths, estimates and selections from a catalogue into `EvaluationData`.

    Parameters are those of `evaluate`. A selection whose columns are missing is skipped
    with a note (and a logged warning); it is not an error.
    """
    if not isinstance(catalog, Table):
        raise TypeError(f"expected an astropy Table or QTable, got {type(catalog).__name__}")
    log10_true, true_col = _true_log10_mass(catalog, true_mass)
    found = {e.name: e for e in find_estimators(catalog)}
    if estimators is None:
        chosen = list(found.values())
        if not chosen:
            raise KeyError(
                "no estimator columns found: expected log10M500c_NAME and "
                "log10M500c_NAME_err (or M500c_NAME with _lo and _hi); columns: "
                f"{', '.join(catalog.colnames)}")
    else:
        if isinstance(estimators, str):
            estimators = [estimators]
        missing = [e for e in estimators if e not in found]
        if missing:
            cn = column_names(missing[0])
            raise KeyError(
                f"no columns for estimator(s) {missing}: expected {cn['log10']!r} and "
                f"{cn['log10_err']!r} (or {cn['mass']!r} with _lo/_hi); estimators found: "
                f"{sorted(found) or 'none'}")
        chosen = [found[e] for e in estimators]
    estimates = {e.name: _estimate_arrays(catalog, e) for e in chosen}
    zcol = find_column(catalog, "z")
    z = None if zcol is None else _plain_values(catalog[zcol], None, zcol)
    notes = []
    if zcol is None:
        notes.append("no redshift column: redshift bins skipped")
    asked = selections is not None  # the default ones are skipped quietly (a note)
    if selections is None:
        selections = DEFAULT_SELECTIONS
    elif isinstance(selections, str):
        selections = {selections: selections}
    elif not isinstance(selections, dict):
        selections = {str(s): s for s in selections}
    masks, texts = {}, {}
    for name, sel in selections.items():
        try:
            masks[name] = selection_mask(catalog, sel)
        except KeyError as exc:
            note = f"selection {name!r} skipped: {exc.args[0]}"
            if asked:
                warnings.warn(note, InputDataWarning, stacklevel=2)
            else:
                log.info(note)
            notes.append(note)
            continue
        texts[name] = sel if isinstance(sel, str) else "mask"
    n_bad = int((~np.isfinite(log10_true)).sum())
    if n_bad:
        notes.append(f"{n_bad} row(s) without a finite positive true mass in {true_col!r} "
                     "excluded")
    return EvaluationData(log10_true, z, estimates, masks, texts, notes, true_col)


# -- metrics --------------------------------------------------------------------------
def residual_metrics(log10_true, log10_est, sigma, pit_bins=10):
    """Metrics of one set of rows (see the module docstring for definitions).

    Parameters
    ----------
    log10_true, log10_est, sigma : arrays
        True and estimated log10 M500c and the predicted sigma [dex]; rows with any
        non-finite value (or sigma <= 0) are ignored.
    pit_bins : int

    Returns
    -------
    dict
        Plain floats (NaN where undefined: n = 0, or n < 2 for the scatters) and ``pit``
        (int array of ``pit_bins`` counts), ``n``.
    """
    t = np.asarray(log10_true, float)
    m = np.asarray(log10_est, float)
    s = np.asarray(sigma, float)
    ok = np.isfinite(t) & np.isfinite(m) & np.isfinite(s) & (s > 0)
    d, s, t = m[ok] - t[ok], s[ok], t[ok]
    n = int(d.size)
    nan = float("nan")
    out = {key: nan for key in _METRIC_UNITS}
    out["n"] = n
    out["pit"] = np.zeros(int(pit_bins), dtype=np.int64)
    if n == 0:
        return out
    pull = d / s
    out.update(
        bias=float(np.mean(d)), median=float(np.median(d)),
        scatter_nmad=float(NMAD_FACTOR * np.median(np.abs(d - np.median(d)))),
        mean_sigma=float(np.mean(s)),
        coverage68=float(np.mean(np.abs(d) < _Z68 * s)),
        coverage95=float(np.mean(np.abs(d) < _Z95 * s)),
    )
    if n >= 2:
        sd = float(np.std(d, ddof=1))
        out.update(scatter=sd, scatter_err=sd / np.sqrt(2.0 * (n - 1)),
                   bias_err=sd / np.sqrt(n), pull_std=float(np.std(pull, ddof=1)))
    pit = ndtr(-pull)  # Phi((t - m) / s)
    out["pit"] = np.histogram(pit, bins=int(pit_bins), range=(0.0, 1.0))[0].astype(np.int64)
    return out


def coverage_curve(d, sigma, probabilities=None):
    """Observed fraction of truths inside the central interval of each probability.

    Parameters
    ----------
    d, sigma : arrays
        Residuals (estimate - truth) and predicted sigmas [dex].
    probabilities : array, optional
        Nominal central-interval probabilities (default 0.05, 0.10, ..., 0.95, 0.99).

    Returns
    -------
    probabilities, observed : arrays
    """
    p = np.asarray(np.r_[np.arange(0.05, 0.951, 0.05), 0.99] if probabilities is None
                   else probabilities, float)
    d = np.asarray(d, float)
    sigma = np.asarray(sigma, float)
    if d.size == 0:
        return p, np.full(p.shape, np.nan)
    half = ndtri(0.5 + p / 2.0)
    pulls = np.abs(d / sigma)
    return p, np.array([np.mean(pulls < h) for h in half])


def _bins(edges, what):
    edges = np.asarray(edges, float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"{what} must be at least two increasing edges; got {edges.tolist()}")
    return edges


def evaluate(catalog, estimators=None, true_mass="M500c", selections=None,
             mass_bins=DEFAULT_MASS_BINS, z_bins=DEFAULT_Z_BINS, pit_bins=10):
    """Compare mass estimators with true masses on the same clusters.

    Parameters
    ----------
    catalog : `~astropy.table.Table` or `~astropy.table.QTable`
        One row per cluster with the true mass and the estimators' output columns
        (``log10M500c_NAME`` and ``log10M500c_NAME_err`` [dex], as written by
        `astro_clustermass.add_mass_columns`). Not modified.
    estimators : list of str, optional
        Estimator names; default every estimator whose columns are present.
    true_mass : str
        Column of the true M500c (Msun; or log10 Msun with unit ``dex``); canonical
        aliases (e.g. ``M500``, ``m500_true``) are recognised. Default ``M500c``.
    selections : dict, optional
        Name -> condition string (e.g. ``'EXT_LIKE > 6 & DET_LIKE > 5'``; ``''`` for
        every row) or boolean mask. Default `DEFAULT_SELECTIONS` (all rows and the
        seeds' two cuts). A selection whose columns are missing is skipped with a note
        in ``meta['notes']``.
    mass_bins : sequence of float
        Edges in log10(M500c_true / Msun) [dex]; bins are [lo, hi).
    z_bins : sequence of float
        Redshift edges; bins are [lo, hi). Skipped (with a note) without a redshift column.
    pit_bins : int
        Bins of the PIT histogram.

    Returns
    -------
    `~astropy.table.QTable`
        One row per (estimator, selection, binning, bin): see the module docstring for
        the columns; undefined values (empty bins) are masked. ``meta`` holds the
        definitions, selections, bins, notes, the input's provenance of each estimator,
        the package version and the date.
    """
    data = collect(catalog, estimators, true_mass, selections)
    return evaluate_data(data, catalog, mass_bins, z_bins, pit_bins)


def evaluate_data(data, catalog, mass_bins=DEFAULT_MASS_BINS, z_bins=DEFAULT_Z_BINS,
                  pit_bins=10):
    """`evaluate` on arrays already gathered by `collect` (``catalog`` for its meta)."""
    mass_bins = _bins(mass_bins, "mass_bins")
    z_bins = _bins(z_bins, "z_bins")
    rows = []
    for est, (mu, sig) in data.estimates.items():
        for sname, smask in data.selections.items():
            base = smask & np.isfinite(data.log10_true)
            binnings = [("all", None, None)]
            binnings += [("log10M", lo, hi) for lo, hi in zip(mass_bins[:-1], mass_bins[1:])]
            if data.z is not None:
                binnings += [("z", lo, hi) for lo, hi in zip(z_bins[:-1], z_bins[1:])]
            for binning, lo, hi in binnings:
                sel = base.copy()
                if binning == "log10M":
                    sel &= (data.log10_true >= lo) & (data.log10_true < hi)
                elif binning == "z":
                    with np.errstate(invalid="ignore"):
                        sel &= (data.z >= lo) & (data.z < hi)
                has = np.isfinite(mu)
                met = residual_metrics(data.log10_true[sel & has], mu[sel & has],
                                       sig[sel & has], pit_bins)
                rows.append({"estimator": est, "selection": sname, "binning": binning,
                             "bin_lo": np.nan if lo is None else float(lo),
                             "bin_hi": np.nan if hi is None else float(hi),
                             "n_no_estimate": int((sel & ~has).sum()), **met})
    return _to_table(rows, data, catalog, mass_bins, z_bins, pit_bins)


def _to_table(rows, data, catalog, mass_bins, z_bins, pit_bins):
    from .. import __version__

    t = QTable()
    n = len(rows)
    t["estimator"] = np.array([r["estimator"] for r in rows], dtype=str) if n else \
        np.zeros(0, dtype="<U1")
    t["selection"] = np.array([r["selection"] for r in rows], dtype=str) if n else \
        np.zeros(0, dtype="<U1")
    t["binning"] = np.array([r["binning"] for r in rows], dtype=str) if n else \
        np.zeros(0, dtype="<U1")
    for key in ("bin_lo", "bin_hi"):
        t[key] = np.array([r[key] for r in rows], dtype=float)
    t["n"] = np.array([r["n"] for r in rows], dtype=np.int64)
    t["n_no_estimate"] = np.array([r["n_no_estimate"] for r in rows], dtype=np.int64)
    for key, unit in _METRIC_UNITS.items():
        values = np.array([r[key] for r in rows], dtype=float)
        t[key] = Masked(values * unit, mask=~np.isfinite(values))
    t["pit"] = (np.array([r["pit"] for r in rows], dtype=np.int64) if n
                else np.zeros((0, int(pit_bins)), dtype=np.int64))
    for name in t.colnames:
        t[name].info.description = _DESCRIPTIONS[name]
    t.meta["astro_clustermass_evaluation"] = {
        "version": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "n_rows_catalog": len(catalog),
        "true_mass_column": data.true_mass_column,
        "estimators": list(data.estimates),
        "selections": dict(data.selection_text),
        "mass_bins_log10Msun": [float(x) for x in mass_bins],
        "z_bins": [float(x) for x in z_bins],
        "pit_bins": int(pit_bins),
        "residual": "log10M500c_NAME - log10(M500c_true / Msun) [dex]",
        "robust_scatter": "scatter_nmad = 1.4826 * median(|d - median(d)|)",
        "coverage": "central 68% (|d| < 0.9945 sigma) and 95% (|d| < 1.960 sigma) intervals",
        "notes": list(data.notes),
        "estimator_provenance": {
            k: v for k, v in (catalog.meta.get("astro_clustermass") or {}).items()
            if k in data.estimates},
    }
    return t
