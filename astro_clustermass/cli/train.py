"""``astro-clustermass train``: train a CNN ensemble on a simulated data set.

No torch import at module level (the CLI imports this module to build its parser).

Examples
--------
Build the data set from simulator output, then train 5 members::

    astro-clustermass train --from-sim sim_output/ data.h5 -o my_ensemble/ --work-dir work/

Resume an interrupted run: run the same command again (checkpoints in ``--work-dir``).

The options of the thesis and lab reports, e.g. an EfficientNet-like net with dropout,
AdamW and a cosine schedule after 20 epochs of MSE pre-training::

    astro-clustermass train data.h5 -o eff/ --arch efficientnet-small --dropout 0.2 \
        --optimizer adamw --weight-decay 1e-4 --lr-schedule cosine --pretrain-mse-epochs 20
"""

from __future__ import annotations

import argparse
import logging
import os

__all__ = ["add_arguments", "run"]

log = logging.getLogger("astro_clustermass")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..catalog import EFEDS_SELECTION as DEFAULT_SELECTION

    parser.add_argument("dataset", help="training data set (HDF5, astro_clustermass.cnn.dataset "
                                        "format); built first if --from-sim is given")
    parser.add_argument("-o", "--output", required=True,
                        help="ensemble directory to write (manifest.yaml + safetensors)")
    parser.add_argument("--work-dir", default=None,
                        help="checkpoints and test predictions (default: OUTPUT/../<name>_work)")
    parser.add_argument("--from-sim", nargs="+", metavar="SIM_DIR",
                        help="simulator output directory(ies) to build DATASET from (skipped "
                             "if DATASET exists)")
    parser.add_argument("--members", type=int, default=5, help="ensemble size (default 5)")
    parser.add_argument("--arch", default="seed000",
                        help="architecture: seed000 (default), resnet-small, vgg-small or "
                             "efficientnet-small")
    parser.add_argument("--epochs", type=int, default=300, help="maximum epochs per member")
    parser.add_argument("--patience", type=int, default=25,
                        help="early stopping: epochs without a better validation loss")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (1e-4)")
    parser.add_argument("--batch-size", type=int, default=100, help="batch size (100)")
    parser.add_argument("--seed", type=int, default=0, help="member i is seeded with SEED + i")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the 70/15/15 split")
    parser.add_argument("--split-by", choices=("cluster", "field"), default="cluster",
                        help="unit of the split: cluster (default) or field (all clusters "
                             "of one simulated field in the same set)")
    parser.add_argument("--selection", default=DEFAULT_SELECTION,
                        help=f"cluster selection (default {DEFAULT_SELECTION!r})")
    parser.add_argument("--uniform-mass-weights", action="store_true",
                        help="weight samples so the mass distribution is effectively uniform")
    parser.add_argument("--weight-power", type=float, default=1.0,
                        help="with --uniform-mass-weights: weight = (samples in the 0.1-dex "
                             "mass bin)^-POWER; 1 flattens fully, 0.5 half-way (default 1)")
    parser.add_argument("--no-augment", action="store_true",
                        help="no random rotations/flips")
    opt = parser.add_argument_group("options of the thesis and lab reports (seeds 001-003)")
    opt.add_argument("--dropout", type=float, default=0.0,
                     help="dropout probability in the dense part (default 0)")
    opt.add_argument("--optimizer", choices=("adam", "adamw"), default="adam",
                     help="adam: weight decay as an L2 penalty in the gradient; adamw: "
                          "decoupled (default adam)")
    opt.add_argument("--weight-decay", type=float, default=0.0,
                     help="weight decay lambda of conv/dense weights, not biases (default 0)")
    opt.add_argument("--lr-schedule", choices=("plateau", "cosine", "step", "constant"),
                     default="plateau", help="learning-rate schedule (default plateau)")
    opt.add_argument("--lr-patience", type=int, default=10,
                     help="plateau: epochs without improvement before the rate drops (10)")
    opt.add_argument("--lr-factor", type=float, default=0.5,
                     help="plateau/step: factor of each drop (0.5)")
    opt.add_argument("--lr-step", type=int, default=30,
                     help="step: epochs between drops (30)")
    opt.add_argument("--min-lr", type=float, default=1e-6,
                     help="plateau floor, cosine end point (1e-6)")
    opt.add_argument("--pretrain-mse-epochs", type=int, default=0,
                     help="train the mean alone with MSE for this many epochs, then the "
                          "Gaussian NLL (default 0: NLL from the start)")
    opt.add_argument("--finetune", choices=("all", "head"), default="all",
                     help="after MSE pre-training: NLL on all weights or the head only")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing ensemble in OUTPUT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def train_config(args):
    """The `~astro_clustermass.cnn.train.TrainConfig` of the parsed arguments."""
    from ..cnn.train import TrainConfig

    return TrainConfig(architecture=args.arch, learning_rate=args.lr,
                       batch_size=args.batch_size, max_epochs=args.epochs,
                       early_stopping_patience=args.patience,
                       augment=not args.no_augment,
                       uniform_mass_weights=args.uniform_mass_weights,
                       weight_power=args.weight_power, dropout=args.dropout,
                       optimizer=args.optimizer, weight_decay=args.weight_decay,
                       lr_schedule=args.lr_schedule, lr_patience=args.lr_patience,
                       lr_factor=args.lr_factor, lr_step_epochs=args.lr_step,
                       min_lr=args.min_lr, pretrain_mse_epochs=args.pretrain_mse_epochs,
                       finetune=args.finetune)


def run(args: argparse.Namespace) -> int:
    from ..utils.optional import require

    require("torch", feature="astro-clustermass train")  # before a data set is built
    require("h5py", feature="astro-clustermass train (HDF5 data sets)")
    from ..cnn.dataset import read_dataset
    from ..cnn.training_set import build_dataset

    if args.from_sim and not os.path.exists(args.dataset):
        build_dataset(args.from_sim, args.dataset, selection=args.selection,
                      progress=not args.no_progress)
    if os.path.exists(os.path.join(args.output, "manifest.yaml")) and not args.overwrite:
        raise SystemExit(f"{args.output} already holds an ensemble; pass --overwrite")
    import torch

    from ..cnn.train import train_ensemble

    if args.threads:
        torch.set_num_threads(args.threads)
    data = read_dataset(args.dataset)
    config = train_config(args)
    work = args.work_dir or os.path.join(
        os.path.dirname(os.path.abspath(args.output)),
        os.path.basename(os.path.normpath(args.output)) + "_work")
    manifest = train_ensemble(data, args.output, work, n_members=args.members, config=config,
                              base_seed=args.seed, selection=args.selection,
                              split_seed=args.split_seed, split_by=args.split_by,
                              progress=not args.no_progress,
                              overwrite=args.overwrite, dataset_path=args.dataset)
    test = manifest["metrics"].get("test", {})
    print(f"wrote {args.members}-member ensemble to {args.output}")
    if test:
        print(f"test set: n={test['n']} scatter={test['scatter']:.3f} dex "
              f"bias={test['bias']:+.3f} mean sigma={test.get('mean_sigma', float('nan')):.3f} "
              f"coverage68={test.get('coverage68', float('nan')):.2f}")
    return 0
