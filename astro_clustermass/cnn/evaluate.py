"""Accuracy metrics of mass estimates against true masses (numpy only; no torch).

Definitions (all in dex of log10 M500c, residual d = predicted - true):

- ``scatter``: standard deviation of d (the seed's sigma, e.g. 0.188);
- ``bias``: mean of d; ``rms``: sqrt(mean(d^2));
- ``mean_sigma``: mean predicted sigma (seed's <sigma_*>);
- ``coverage68``: fraction of clusters with |d| < sigma (a 68.3% interval if the
  Gaussian is honest);
- ``bias_by_mass``: mean d in 0.5-dex bins of the TRUE mass (13.5-14, 14-14.5, 14.5-15),
  with the number of clusters per bin;
- ``member_spread``: mean over clusters of the standard deviation of the member means,
  and the mean of sigma_i / sigma_* (seed: 0.951 +/- 0.039).
"""

from __future__ import annotations

import numpy as np

__all__ = ["residual_metrics", "ensemble_metrics", "MASS_BINS"]

MASS_BINS = ((13.5, 14.0), (14.0, 14.5), (14.5, 15.0))


def residual_metrics(log10_true, log10_pred, sigma=None, bins=MASS_BINS):
    """Scatter, bias, coverage and binned bias of predictions (see module docstring).

    Rows where either value is not finite are ignored (their number is reported).
    """
    t = np.asarray(log10_true, float)
    p = np.asarray(log10_pred, float)
    ok = np.isfinite(t) & np.isfinite(p)
    if sigma is not None:
        s = np.asarray(sigma, float)
        ok &= np.isfinite(s)
    d = p[ok] - t[ok]
    out = {"n": int(ok.sum()), "n_missing": int((~ok).sum())}
    if ok.sum() == 0:
        return out
    out.update(scatter=float(np.std(d)), bias=float(np.mean(d)),
               rms=float(np.sqrt(np.mean(d ** 2))))
    if sigma is not None:
        s = s[ok]
        out.update(mean_sigma=float(np.mean(s)),
                   coverage68=float(np.mean(np.abs(d) < s)),
                   mean_sigma_over_scatter=float(np.mean(s) / np.std(d)))
    by = []
    for lo, hi in bins:
        m = (t[ok] >= lo) & (t[ok] < hi)
        by.append({"log10M_lo": lo, "log10M_hi": hi, "n": int(m.sum()),
                   "bias": float(np.mean(d[m])) if m.any() else None,
                   "scatter": float(np.std(d[m])) if m.sum() > 1 else None})
    out["bias_by_mass"] = by
    return out


def ensemble_metrics(log10_true, mean, sigma_star, mu=None, sigma=None):
    """`residual_metrics` of the ensemble plus member disagreement."""
    out = residual_metrics(log10_true, mean, sigma_star)
    if mu is not None and len(mu) > 1:
        out["member_spread_mean"] = float(np.mean(np.std(mu, axis=0)))
        out["member_scatter"] = [float(np.std(m - np.asarray(log10_true, float))) for m in mu]
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
    dict estimator name -> `residual_metrics` (on the clusters every estimator could
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
    out = {name: residual_metrics(truth[common], mu[common], sig[common])
           for name, (mu, sig) in preds.items()}
    out["n_common"] = int(common.sum())
    out["n_total"] = int(len(cat))
    return out, preds, truth


def main(argv=None):
    """``python -m astro_clustermass.cnn.evaluate``: the CNN ensemble on its held-out test
    split (or, with ``--split val``, on the validation split used to choose between
    trained ensembles), side by side with the scaling relations; writes JSON metrics and
    figures."""
    import argparse
    import json
    import os

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("dataset", help="the data set the ensemble was trained on (HDF5)")
    p.add_argument("--weights", default=None, help="ensemble directory (default: shipped)")
    p.add_argument("--out", default="cnn_evaluation", help="output directory")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="evaluate on the test split (default) or on the validation split "
                        "(for choosing between ensembles without looking at the test split)")
    args = p.parse_args(argv)

    import torch

    from .dataset import read_dataset
    from .ensemble import Ensemble
    from .io import default_weights_dir
    from .train import prepare_splits

    if args.threads:
        torch.set_num_threads(args.threads)
    weights = args.weights or default_weights_dir()
    ens = Ensemble.load(weights)
    man = ens.manifest
    data = read_dataset(args.dataset)
    ds = man["dataset"]
    splits, info = prepare_splits(data, ds["selection"], ds["split_seed"],
                                  tuple(ds["split_fractions"]))
    for key in ("n_train", "n_val", "n_test"):
        if info[key] != ds[key]:
            raise SystemExit(f"{args.dataset} does not reproduce the ensemble's split "
                             f"({key}: {info[key]} vs manifest {ds[key]}): wrong data set?")
    test = splits[args.split]
    mean, sstar, mu, sig = ens.predict(test.ebi, test.z)
    cmp_, preds, truth = compare_estimators(test.catalog, mean, sstar)
    result = {"weights": weights, "dataset": os.path.abspath(args.dataset),
              "split": args.split,
              f"ensemble_{args.split}": ensemble_metrics(test.log10_mass, mean, sstar, mu, sig),
              "comparison_common_clusters": cmp_}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "metrics.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    _plots(args.out, truth, preds, mu)
    print(json.dumps({k: {kk: v[kk] for kk in ("n", "scatter", "bias", "mean_sigma", "coverage68")
                          if kk in v}
                      for k, v in cmp_.items() if isinstance(v, dict)}, indent=1))
    return 0


def _plots(out, truth, preds, mu):
    import os

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = list(preds)
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(4 * (len(names) + 1), 4))
    for ax, name in zip(axes, names):
        m, s = preds[name]
        ok = np.isfinite(m)
        ax.scatter(truth[ok], m[ok], s=3, c=s[ok], cmap="viridis")
        lo, hi = np.nanmin(truth), np.nanmax(truth)
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        d = m[ok] - truth[ok]
        ax.set_title(f"{name}: scatter {np.std(d):.3f} dex")
        ax.set_xlabel("true log10 M500c")
        ax.set_ylabel("predicted log10 M500c")
    ax = axes[-1]
    m, s = preds["cnn-ensemble"]
    ok = np.isfinite(m)
    ax.hist((m[ok] - truth[ok]) / s[ok], bins=40, range=(-4, 4), density=True, alpha=0.7)
    x = np.linspace(-4, 4, 200)
    ax.plot(x, np.exp(-x ** 2 / 2) / np.sqrt(2 * np.pi), "k-")
    ax.set_xlabel("(pred - true) / sigma_*")
    ax.set_title("CNN pull distribution")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "cnn_vs_relations.png"), dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    import sys

    sys.exit(main())
