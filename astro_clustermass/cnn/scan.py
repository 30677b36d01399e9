"""Recipe scan and ensemble-size analysis on one validation split (imports torch).

`scan_recipes` trains every recipe (a name and `~astro_clustermass.cnn.train.TrainConfig`
keys) on the *same* training split of a data set, with the same member seeds, and
measures it on the *same* validation split: a table in the style of seed 001's Table 3
(parameters, time per epoch) with the figures of issue 22 (scatter, bias per 0.5-dex
bin of true mass, <sigma>/scatter, 68 % coverage), so that the choice of a recipe is made
on validation data only; the test split is not touched. Members are checkpointed in
``work_dir/<recipe>/member_XX`` (the scan resumes, and a later call with more members
reuses the finished ones).

`ensemble_size_table` measures the same figures for ensembles of 5, 10, 20 ... members
drawn from the members of one recipe (the mean and spread over random subsets), to see
what further members buy in scatter and calibration.
"""

from __future__ import annotations

import os

import numpy as np

from .metrics import MASS_BINS, summary_metrics

__all__ = ["DEFAULT_RECIPES", "scan_recipes", "ensemble_size_table", "format_table",
           "member_predictions"]

#: The options of the thesis and lab reports, one change at a time from the shipped
#: recipe (seed 000), plus the other architectures.
DEFAULT_RECIPES = {
    "seed000": {},
    "seed000-dropout0.2": {"dropout": 0.2},
    "seed000-adam-l2-1e-4": {"weight_decay": 1e-4},
    "seed000-adamw-1e-2": {"optimizer": "adamw", "weight_decay": 1e-2},
    "seed000-cosine": {"lr_schedule": "cosine", "learning_rate": 3e-4},
    "seed000-step": {"lr_schedule": "step", "lr_step_epochs": 40},
    "seed000-mse-then-nll": {"pretrain_mse_epochs": 30},
    "resnet-small": {"architecture": "resnet-small"},
    "vgg-small": {"architecture": "vgg-small"},
    "efficientnet-small": {"architecture": "efficientnet-small", "learning_rate": 1e-3},
}


def member_predictions(models, normalisation, data):
    """Member predictions (mu, sigma), arrays (M, N) in dex, on a split."""
    from .ensemble import Ensemble

    return Ensemble(list(models), normalisation, fuse=False).predict_members(data.ebi, data.z)


def _row(name, config, metrics, results, n_params, flops):
    row = {"recipe": name, "architecture": config.architecture, "parameters": n_params,
           "MFLOP": round(flops / 1e6, 1), "members": len(results),
           "epochs": float(np.mean([r.epochs_run for r in results])),
           "best_epoch": float(np.mean([r.best_epoch for r in results])),
           "s_per_epoch": float(np.mean([r.seconds / max(r.epochs_run, 1) for r in results])),
           "n_val": metrics["n"], "scatter": metrics["scatter"], "bias": metrics["bias"]}
    for b in metrics["bias_by_mass"]:
        row[f"bias_{b['log10M_lo']:g}-{b['log10M_hi']:g}"] = b["bias"]
    row["sigma_over_scatter"] = metrics["mean_sigma_over_scatter"]
    row["cov68"] = metrics["coverage68"]
    return row


def scan_recipes(data, recipes, work_dir, selection="", split_seed=0, members=1,
                 split_by="cluster",
                 base_seed=0, base_config=None, progress=False, log=print):
    """Train each recipe on one split and measure it on the validation clusters.

    Parameters
    ----------
    data : `~astro_clustermass.cnn.dataset.TrainingData`
    recipes : dict
        Recipe name -> dict of `TrainConfig` keys (changes from ``base_config``).
    work_dir : str
        Checkpoints, ``work_dir/<recipe>/member_XX``.
    selection : str
        Cluster selection (see `~astro_clustermass.cnn.dataset.prepare_splits`).
    split_seed : int
        The one split every recipe shares.
    split_by : {'cluster', 'field'}
        Unit of the split (`~astro_clustermass.cnn.dataset.prepare_splits`).
    members : int
        Members per recipe (seeds ``base_seed + i``, the same for every recipe).
    base_config : dict, optional
        `TrainConfig` keys common to all recipes (e.g. ``max_epochs``).
    progress : bool
    log : callable
        Receives a line per finished recipe.

    Returns
    -------
    rows : list of dict
        One per recipe, see `format_table` for the columns.
    predictions : dict
        Recipe name -> (mu, sigma) member predictions on the validation split, arrays
        (members, N) [dex], and ``"truth"`` -> true log10 M500c of those clusters.
    """
    import torch

    from .dataset import Normalisation, prepare_splits
    from .ensemble import combine
    from .model import count_parameters, flops_per_sample
    from .train import TrainConfig, train_member

    splits, _ = prepare_splits(data, selection, split_seed, split_by=split_by)
    train, val = splits["train"], splits["val"]
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"selection {selection!r} leaves {len(train)} training and "
                         f"{len(val)} validation clusters")
    norm = Normalisation.fit(train.z, train.log10_mass)
    rows, preds = [], {"truth": val.log10_mass}
    for name, changes in recipes.items():
        config = TrainConfig(**{**(base_config or {}), **changes})
        results = [train_member(train, val, config, base_seed + i, norm,
                                checkpoint_dir=os.path.join(work_dir, name, f"member_{i:02d}"),
                                progress=progress, desc=f"{name} {i + 1}/{members}")
                   for i in range(members)]
        mu, sig = member_predictions([r.model for r in results], norm, val)
        mean, sstar = combine(mu, sig)
        metrics = summary_metrics(val.log10_mass, mean, sstar)
        shape = data.ebi.shape[1:]
        with torch.no_grad():
            flops = flops_per_sample(results[0].model, (shape[2], shape[0], shape[1]))
        rows.append(_row(name, config, metrics, results, count_parameters(results[0].model),
                         flops))
        preds[name] = (mu, sig)
        log(format_table(rows[-1:], header=False))
    return rows, preds


def ensemble_size_table(mu, sigma, truth, sizes=(5, 10, 20), draws=20, seed=0):
    """Scatter and calibration of ensembles of ``sizes`` members drawn from ``mu, sigma``.

    Parameters
    ----------
    mu, sigma : arrays (M, N)
        Member predictions [dex] of M members on N validation clusters.
    truth : array (N,)
        True log10 M500c.
    sizes : sequence of int
        Ensemble sizes; those above M are skipped.
    draws : int
        Random subsets per size (without replacement; one when the size is M).
    seed : int

    Returns
    -------
    list of dict
        Per size: ``members``, ``subsets`` and, for scatter, bias, sigma_over_scatter,
        cov68 and mean_sigma, the mean over the subsets and (``_sd``) their standard
        deviation.
    """
    from .ensemble import combine

    mu, sigma = np.asarray(mu, float), np.asarray(sigma, float)
    rng = np.random.default_rng(seed)
    out = []
    for k in sizes:
        if k > len(mu):
            continue
        n = 1 if k == len(mu) else int(draws)
        vals = {key: [] for key in ("scatter", "bias", "mean_sigma_over_scatter",
                                    "coverage68", "mean_sigma")}
        for _ in range(n):
            pick = np.sort(rng.choice(len(mu), k, replace=False))
            mean, sstar = combine(mu[pick], sigma[pick])
            m = summary_metrics(truth, mean, sstar)
            for key in vals:
                vals[key].append(m[key])
        row = {"members": int(k), "subsets": n}
        for key, v in vals.items():
            short = {"mean_sigma_over_scatter": "sigma_over_scatter",
                     "coverage68": "cov68"}.get(key, key)
            row[short] = float(np.mean(v))
            row[short + "_sd"] = float(np.std(v))
        out.append(row)
    return out


_BIN_KEYS = [f"bias_{lo:g}-{hi:g}" for lo, hi in MASS_BINS]
_COLUMNS = [("recipe", "{}"), ("parameters", "{:,}"), ("MFLOP", "{:.1f}"),
            ("members", "{}"), ("epochs", "{:.0f}"), ("s_per_epoch", "{:.2f}"),
            ("scatter", "{:.3f}"), ("bias", "{:+.3f}")] + \
    [(k, "{:+.3f}") for k in _BIN_KEYS] + \
    [("sigma_over_scatter", "{:.2f}"), ("cov68", "{:.2f}")]


def format_table(rows, header=True, columns=None):
    """An RST simple table of scan rows (or ensemble-size rows with ``columns``)."""
    columns = columns or _COLUMNS
    cells = [[fmt.format(r[k]) if r.get(k) is not None else "-" for k, fmt in columns]
             for r in rows]
    names = [k for k, _ in columns]
    width = [max(len(n), *(len(c[i]) for c in cells)) if cells else len(n)
             for i, n in enumerate(names)]
    rule = "  ".join("=" * w for w in width)
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, width)).rstrip()  # noqa: E731
    body = [line(c) for c in cells]
    if not header:
        return "\n".join(body)
    return "\n".join([rule, line(names), rule, *body, rule])


#: columns of `format_table` for `ensemble_size_table` rows
SIZE_COLUMNS = [("members", "{}"), ("subsets", "{}"), ("scatter", "{:.4f}"),
                ("scatter_sd", "{:.4f}"), ("bias", "{:+.4f}"),
                ("sigma_over_scatter", "{:.3f}"), ("sigma_over_scatter_sd", "{:.3f}"),
                ("cov68", "{:.3f}"), ("cov68_sd", "{:.3f}")]
