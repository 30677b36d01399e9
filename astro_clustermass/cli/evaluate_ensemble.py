"""``astro-clustermass evaluate-ensemble``: a CNN ensemble on its held-out split.

The ensemble on its test split (or, with ``--split val``, on the validation split used
to choose between trained ensembles), side by side with the scaling relations on the
same clusters; writes ``metrics.json`` and ``cnn_vs_relations.png``. Example::

    astro-clustermass evaluate-ensemble data.h5 --weights my_ensemble/ --out eval/
"""

from __future__ import annotations

import numpy as np

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    """Arguments of ``astro-clustermass evaluate-ensemble``."""
    parser.add_argument("dataset", help="the data set the ensemble was trained on (HDF5)")
    parser.add_argument("--weights", default=None, help="ensemble directory (default: shipped)")
    parser.add_argument("--out", default="cnn_evaluation", help="output directory")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--split", choices=("test", "val"), default="test",
                        help="evaluate on the test split (default) or on the validation split "
                             "(for choosing between ensembles without looking at the test split)")


def run(args):
    """Run ``astro-clustermass evaluate-ensemble``; returns the exit status."""

    import json
    import os

    from ..utils.optional import require

    torch = require("torch", feature="astro-clustermass evaluate-ensemble")

    from ..cnn.dataset import prepare_splits, read_dataset
    from ..cnn.ensemble import Ensemble
    from ..cnn.io import default_weights_dir
    from ..cnn.metrics import compare_estimators, ensemble_metrics

    if args.threads:
        torch.set_num_threads(args.threads)
    weights = args.weights or default_weights_dir()
    ens = Ensemble.load(weights)
    man = ens.manifest
    data = read_dataset(args.dataset)
    ds = man["dataset"]
    splits, info = prepare_splits(data, ds["selection"], ds["split_seed"],
                                  tuple(ds["split_fractions"]),
                                  split_by=ds.get("split_unit", "cluster"))
    for key in ("n_train", "n_val", "n_test"):
        if info[key] != ds[key]:
            raise ValueError(f"{args.dataset} does not reproduce the ensemble's split "
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
    """Predicted vs true mass per estimator and the CNN's pull distribution (PNG)."""
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
