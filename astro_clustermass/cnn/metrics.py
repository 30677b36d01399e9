"""The figures reported for a CNN ensemble against true masses (numpy only; no torch).

Definitions (all in dex of log10 M500c, residual d = predicted - true), those of
`astro_clustermass.evaluation.metrics` where they overlap:

- ``scatter``: standard deviation of d (ddof = 1; the seed's sigma, e.g. 0.188);
- ``bias``: mean of d; ``rms``: sqrt(mean(d^2));
- ``mean_sigma``: mean predicted sigma (seed's <sigma_*>);
- ``coverage68``, ``coverage95``: fraction of true masses inside the central 68% (95%)
  interval of the predicted Gaussian;
- ``bias_by_mass``: mean d in 0.5-dex bins of the TRUE mass (13.5-14, 14-14.5, 14.5-15),
  with the number of clusters per bin;
- ``member_spread``: mean over clusters of the standard deviation of the member means,
  and the mean of sigma_i / sigma_* (seed: 0.951 +/- 0.039).
"""

from __future__ import annotations

import numpy as np

from ..evaluation.metrics import residual_metrics as _residuals

__all__ = ["summary_metrics", "ensemble_metrics", "compare_estimators", "MASS_BINS"]

MASS_BINS = ((13.5, 14.0), (14.0, 14.5), (14.5, 15.0))


def summary_metrics(log10_true, log10_pred, sigma, bins=MASS_BINS):
    """Scatter, bias, coverage and binned bias of predictions (see module docstring).

    The scatter, bias, mean sigma and coverages are those of
    `astro_clustermass.evaluation.metrics.residual_metrics` (one definition for the whole
    package); this adds ``rms``, ``mean_sigma_over_scatter``, ``bias_by_mass`` and
    ``n_missing``. Rows where any value is not finite (or sigma <= 0) are ignored.
    """
    t = np.asarray(log10_true, float)
    p = np.asarray(log10_pred, float)
    s = np.asarray(sigma, float)
    ok = np.isfinite(t) & np.isfinite(p) & np.isfinite(s) & (s > 0)
    out = {"n": int(ok.sum()), "n_missing": int((~ok).sum())}
    if not ok.any():
        return out
    base = _residuals(t[ok], p[ok], s[ok])
    d = p[ok] - t[ok]
    out.update({k: base[k] for k in ("scatter", "bias", "mean_sigma", "coverage68",
                                     "coverage95")})
    out["rms"] = float(np.sqrt(np.mean(d ** 2)))
    out["mean_sigma_over_scatter"] = float(base["mean_sigma"] / base["scatter"])
    by = []
    for lo, hi in bins:
        m = (t[ok] >= lo) & (t[ok] < hi)
        by.append({"log10M_lo": lo, "log10M_hi": hi, "n": int(m.sum()),
                   "bias": float(np.mean(d[m])) if m.any() else None,
                   "scatter": float(np.std(d[m], ddof=1)) if m.sum() > 1 else None})
    out["bias_by_mass"] = by
    return out


def ensemble_metrics(log10_true, mean, sigma_star, mu=None, sigma=None):
    """`summary_metrics` of the ensemble plus member disagreement."""
    out = summary_metrics(log10_true, mean, sigma_star)
    if mu is not None and len(mu) > 1:
        out["member_spread_mean"] = float(np.mean(np.std(mu, axis=0)))
        out["member_scatter"] = [float(np.std(m - np.asarray(log10_true, float), ddof=1))
                                 for m in mu]
    if sigma is not None:
        ratio = np.asarray(sigma) / np.asarray(sigma_star)[None, :]
        out["sigma_member_over_sigma_star"] = [float(np.mean(ratio)), float(np.std(ratio))]
    return out


def compare_estimators(test_catalog, cnn_mean, cnn_sigma, lx_column="LX",
                       rate_column="ML_RATE", rate_err_column="ML_RATE_ERR"):
    """CNN ensemble vs the L_X (true luminosities) and count-rate (measured rates)
    relations on the same clusters.

    Parameters
    ----------
    test_catalog : `~astropy.table.Table`
        Test clusters with ``M500c``, ``z`` and the relation inputs.
    cnn_mean, cnn_sigma : arrays
        Ensemble predictions [dex].

    Returns
    -------
    dict estimator name -> `summary_metrics` (on the clusters every estimator could
    estimate), plus ``"n_common"``.
    """
    from astropy.table import Table

    from ..api import get_estimator
    from .dataset import TrainingData

    cat = Table(test_catalog, copy=True)
    truth = TrainingData(np.zeros((len(cat), 1, 1, 1)), cat).log10_mass
    preds = {"cnn-ensemble": (np.asarray(cnn_mean), np.asarray(cnn_sigma))}
    for name, cols in (("lx-chiu22", {"LX": lx_column}),
                       ("cr-erass1", {"count_rate": rate_column,
                                      "count_rate_err": rate_err_column})):
        if not all(c in cat.colnames for c in cols.values()):
            continue
        sub = Table({"z": np.asarray(cat["z"], float)})
        for canon, col in cols.items():
            sub[canon] = cat[col]
        est = get_estimator(name).estimate(sub)
        preds[name] = (np.where(est.valid, est.log10_mass, np.nan),
                       np.where(est.valid, est.log10_mass_err, np.nan))
    common = np.isfinite(truth)
    for mu, sig in preds.values():
        common &= np.isfinite(mu) & np.isfinite(sig)
    out = {name: summary_metrics(truth[common], mu[common], sig[common])
           for name, (mu, sig) in preds.items()}
    out["n_common"] = int(common.sum())
    out["n_total"] = int(len(cat))
    return out, preds, truth
