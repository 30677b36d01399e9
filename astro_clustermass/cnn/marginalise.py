"""Calibration-marginalised ensembles: members trained on different prior draws (issue 23).

A training set made with ``astro-clustermass dataset --priors ... --chunks-per-draw N``
holds clusters from several draws of the simulator priors (column ``sim_draw``, the drawn
parameters in ``sim_*``). `train_marginalised` splits it once by cluster (70/15/15, as
`~astro_clustermass.cnn.train.train_ensemble`), fits one normalisation on the whole
training split, and trains ``members_per_draw`` members on each draw's training and
validation clusters only; the ensemble's manifest records each member's draw
(``prior_draw``), which makes `~astro_clustermass.cnn.estimator.CNNEnsembleEstimator`
split its sigma into a statistical and a model part
(`~astro_clustermass.cnn.estimator.split_sigma`). Imports torch.

Command line (the demonstration in docs/validation.rst)::

    python -m astro_clustermass.cnn.marginalise DATA.h5 OUT_DIR --work WORK \\
        --members-per-draw 1 --max-epochs 200 --threads 2
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

__all__ = ["train_marginalised"]


def _draw_values(catalog, rows):
    names = [c for c in catalog.colnames if c.startswith("sim_") and c != "sim_draw"]
    return {c[4:]: float(np.asarray(catalog[c])[rows[0]]) for c in names}


def train_marginalised(data, out_dir, work_dir, members_per_draw=1, config=None,
                       base_seed=0, selection=None, split_seed=0, progress=True,
                       overwrite=False, dataset_path=None, notes=""):
    """Train members on each prior draw of ``data`` and write one ensemble.

    Parameters
    ----------
    data : `~astro_clustermass.cnn.dataset.TrainingData`
        A data set with a ``sim_draw`` column (``astro-clustermass dataset --priors``).
    out_dir, work_dir : str
        Ensemble directory; checkpoints (resumable, one directory per member).
    members_per_draw : int
    config : `~astro_clustermass.cnn.train.TrainConfig`, optional
    base_seed : int
        Member *i* (draw-major order) is seeded ``base_seed + i``.
    selection : str, optional
        Default `~astro_clustermass.cnn.dataset.DEFAULT_SELECTION`.
    split_seed : int
    progress, overwrite : bool
    dataset_path : str, optional
    notes : str
        Written to the manifest.

    Returns
    -------
    manifest : dict
    """
    import torch

    from .. import __version__
    from .dataset import DEFAULT_SELECTION, Normalisation, file_sha256, prepare_splits
    from .ensemble import Ensemble
    from .io import save_ensemble
    from .metrics import ensemble_metrics
    from .model import count_parameters
    from .train import TrainConfig, train_member

    if "sim_draw" not in data.catalog.colnames:
        raise ValueError("the data set has no 'sim_draw' column: make it with "
                         "'astro-clustermass dataset --priors'")
    config = config or TrainConfig()
    selection = DEFAULT_SELECTION if selection is None else selection
    splits, info = prepare_splits(data, selection, split_seed)
    train, val, test = splits["train"], splits["val"], splits["test"]
    norm = Normalisation.fit(train.z, train.log10_mass)
    draw_of = {name: np.asarray(part.catalog["sim_draw"]) for name, part in splits.items()}
    models, members = [], []
    for g in np.unique(draw_of["train"]):
        rows = np.flatnonzero(draw_of["train"] == g)
        vrows = np.flatnonzero(draw_of["val"] == g)
        if len(vrows) == 0:
            raise ValueError(f"draw {g} has no validation clusters ({len(rows)} training)")
        prior_draw = {"id": int(g), "values": _draw_values(train.catalog, rows),
                      "n_train": int(len(rows)), "n_val": int(len(vrows))}
        for j in range(int(members_per_draw)):
            seed = base_seed + len(models)
            res = train_member(train.subset(rows), val.subset(vrows), config, seed, norm,
                               checkpoint_dir=os.path.join(work_dir, f"draw_{g:03d}_{j:02d}"),
                               progress=progress, desc=f"draw {g} member {j + 1}")
            models.append(res.model)
            members.append({"seed": seed, "epochs_run": res.epochs_run,
                            "best_epoch": res.best_epoch,
                            "best_val_loss": float(res.best_val_loss),
                            "train_seconds": round(res.seconds, 1), "prior_draw": prior_draw})
    ens = Ensemble(models, norm)
    metrics = {}
    for name, part in (("val", val), ("test", test)):
        mean, sstar, mu, sig = ens.predict(part.ebi, part.z)
        metrics[name] = ensemble_metrics(part.log10_mass, mean, sstar, mu, sig)
    path = dataset_path or data.path
    manifest = {
        "name": os.path.basename(os.path.normpath(out_dir)),
        "package_version": __version__, "torch_version": torch.__version__,
        "architecture": {"name": config.architecture, "config": config.build_model()[1],
                         "n_parameters": count_parameters(models[0])},
        "input": {"images": "energy-band images (N, ny, nx, nbands) counts, channel-last",
                  "image_shape": list(data.ebi.shape[1:]), "redshift": "z"},
        "normalisation": norm.to_dict(), "ebi_parameters": data.ebi_parameters,
        "dataset": {"path": os.path.abspath(path or ""),
                    "sha256": file_sha256(path) if path else None, **info,
                    "log10M500c_range": [round(float(train.log10_mass.min()), 3),
                                         round(float(train.log10_mass.max()), 3)],
                    "z_range": [round(float(train.z.min()), 3), round(float(train.z.max()), 3)],
                    "source": (data.attrs or {}).get("source", "")},
        "training": {**config.to_dict(), "base_seed": base_seed,
                     "torch_threads": torch.get_num_threads()},
        "marginalisation": {
            "method": "members trained on different simulator-prior draws (one normalisation "
                      "fitted on the whole training split); sigma_model = spread of the "
                      "draws' member means (astro_clustermass.cnn.estimator.split_sigma)",
            "members_per_draw": int(members_per_draw),
            "n_draws": len({m["prior_draw"]["id"] for m in members})},
        "metrics": metrics, "notes": notes, "members": members,
    }
    save_ensemble(out_dir, models, manifest, overwrite=overwrite)
    return manifest


def main(argv=None):
    from .dataset import read_dataset
    from .train import TrainConfig

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dataset")
    p.add_argument("out")
    p.add_argument("--work", required=True)
    p.add_argument("--members-per-draw", type=int, default=1)
    p.add_argument("--max-epochs", type=int, default=300)
    p.add_argument("--patience", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--notes", default="")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    config = TrainConfig(max_epochs=args.max_epochs, early_stopping_patience=args.patience)
    man = train_marginalised(read_dataset(args.dataset), args.out, args.work,
                             members_per_draw=args.members_per_draw, config=config,
                             dataset_path=args.dataset, notes=args.notes,
                             overwrite=args.overwrite, progress=False)
    t = man["metrics"]["test"]
    print(f"wrote {args.out}: {len(man['members'])} members on "
          f"{man['marginalisation']['n_draws']} draws; test scatter {t['scatter']:.3f}, "
          f"cov68 {t['coverage68']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
