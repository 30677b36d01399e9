"""Training of CNN ensemble members (imports torch).

Seed 000 sect. 3 and App. B: Gaussian negative log-likelihood (Eq. 1), random 90-degree
rotations and flips of the images, Adam with learning rate 1e-4, batch size 100, learning
rate reduced on plateaus of the validation loss, early stopping on the validation loss
(the weights of the best validation epoch are kept), optional sample weights that make
the effective mass distribution uniform (sect. 4). Deterministic: a member's weight
initialisation, batch order and augmentation follow from its seed alone, so a run that is
interrupted and resumed from its checkpoint gives the same weights as an uninterrupted one.

The options of the thesis and lab reports (seeds 001-003) are `TrainConfig` keys:
dropout (seed 002 sect. 7), weight decay as an L2 penalty on the weights (seed 002
sect. 8, seed 003) with Adam or decoupled with AdamW, learning-rate schedules (plateau,
cosine, step; seed 002 sect. 6 tried an exponential decay), and mean-squared-error
pre-training followed by Gaussian-NLL fine-tuning (seed 003 sect. 3.6; seed 000 App. B).

Checkpoints are a safetensors file (model, best model, optimizer state) plus a JSON file
(epoch, history, scheduler, early-stopping state): nothing is pickled.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..io.atomic import atomic_write_text
from .dataset import Normalisation, uniform_mass_weights
from .io import load_state, save_state
from .losses import gaussian_nll, mean_squared_error
from .model import build_model

__all__ = ["TrainConfig", "augment", "train_member", "evaluate_loss", "MemberResult",
           "make_optimizer", "make_scheduler", "LR_SCHEDULES", "OPTIMIZERS"]

#: ``TrainConfig.lr_schedule`` values
LR_SCHEDULES = ("plateau", "cosine", "step", "constant")
#: ``TrainConfig.optimizer`` values
OPTIMIZERS = ("adam", "adamw")

log = logging.getLogger("astro_clustermass")


@dataclass
class TrainConfig:
    """Training settings (all recorded in the manifest).

    Attributes
    ----------
    architecture : str
        Name in `astro_clustermass.cnn.model.ARCHITECTURES`.
    arch_config : dict
        Options of the architecture (defaults if empty).
    learning_rate : float
        Adam's initial learning rate (seed: 1e-4).
    batch_size : int
        Seed: 100.
    max_epochs : int
    lr_patience, lr_factor, min_lr :
        `torch.optim.lr_scheduler.ReduceLROnPlateau` on the validation loss.
    early_stopping_patience : int
        Stop after this many epochs without a better validation loss.
    augment : bool
        Random 90-degree rotations and flips.
    uniform_mass_weights : bool
        Weight samples so the effective log10 M distribution is uniform.
    weight_bin_width, weight_max, weight_power : float
        See `astro_clustermass.cnn.dataset.uniform_mass_weights` (``weight_power=1``
        flattens the mass distribution completely, 0.5 half-way in log).
    dropout : float
        Dropout probability of the architecture's dense part (see
        `astro_clustermass.cnn.model`); recorded in the architecture's configuration.
    optimizer : str
        ``"adam"`` (seed 000) or ``"adamw"``.
    weight_decay : float
        Weight decay lambda of the convolution and dense weights (biases and batch-norm
        parameters are not decayed, like Keras' ``kernel_regularizer`` in seed 002). With
        ``"adam"`` it is an L2 penalty: lambda * w is added to the gradient, i.e.
        lambda/2 * sum(w^2) to the loss (Keras ``l2(l)`` is ``weight_decay = 2 l``);
        with ``"adamw"`` the weights shrink by lr * lambda per step, outside Adam's
        moment estimates (Loshchilov & Hutter 2019).
    lr_schedule : str
        ``"plateau"`` (default: ``lr_factor`` after ``lr_patience`` epochs without a
        better validation loss, down to ``min_lr``), ``"cosine"`` (cosine annealing from
        ``learning_rate`` to ``min_lr`` over ``max_epochs``), ``"step"`` (times
        ``lr_factor`` every ``lr_step_epochs``) or ``"constant"``.
    lr_step_epochs : int
    pretrain_mse_epochs : int
        Train the mean output alone with the mean squared error for this many epochs
        first, then switch to the Gaussian NLL (seed 003 sect. 3.6). The best-epoch
        tracking, early stopping and the plateau schedule start afresh at the switch, so
        the weights kept are those of the best NLL epoch.
    finetune : str
        After MSE pre-training: ``"all"`` trains every weight with the NLL, ``"head"``
        only the final dense layer (as seed 003 did).
    """

    architecture: str = "seed000"
    arch_config: dict = field(default_factory=dict)
    learning_rate: float = 1e-4
    batch_size: int = 100
    max_epochs: int = 300
    lr_patience: int = 10
    lr_factor: float = 0.5
    min_lr: float = 1e-6
    early_stopping_patience: int = 25
    augment: bool = True
    uniform_mass_weights: bool = False
    weight_bin_width: float = 0.1
    weight_max: float = 20.0
    weight_power: float = 1.0
    dropout: float = 0.0
    optimizer: str = "adam"
    weight_decay: float = 0.0
    lr_schedule: str = "plateau"
    lr_step_epochs: int = 30
    pretrain_mse_epochs: int = 0
    finetune: str = "all"

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {self.optimizer!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, "
                             f"not {self.lr_schedule!r}")
        if self.finetune not in ("all", "head"):
            raise ValueError(f"finetune must be 'all' or 'head', not {self.finetune!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, not {self.weight_decay}")
        if not 0 <= self.pretrain_mse_epochs < self.max_epochs:
            raise ValueError(f"pretrain_mse_epochs ({self.pretrain_mse_epochs}) must be "
                             f"below max_epochs ({self.max_epochs}): the NLL trains sigma")
        if "dropout" in self.arch_config and self.arch_config["dropout"] != self.dropout \
                and self.dropout:
            raise ValueError("dropout given both as a TrainConfig key and in arch_config")

    def to_dict(self):
        return asdict(self)

    def model_config(self):
        """The architecture options, with ``dropout`` from this configuration."""
        cfg = dict(self.arch_config)
        if self.dropout or "dropout" not in cfg:
            cfg["dropout"] = self.dropout
        return cfg

    def build_model(self):
        """`astro_clustermass.cnn.model.build_model` for this configuration."""
        return build_model(self.architecture, **self.model_config())


def make_optimizer(model, config):
    """The optimizer of `TrainConfig` ``config`` (see its ``optimizer``, ``weight_decay``).

    Weights of convolutions and dense layers (tensors of 2 or more dimensions) are in the
    first parameter group, with the weight decay; biases and batch-norm scales and
    offsets in the second, without.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() > 1],
               "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0}]
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=config.learning_rate)


def make_scheduler(opt, config):
    """The learning-rate scheduler of ``config.lr_schedule`` (stepped once per epoch)."""
    sch = torch.optim.lr_scheduler
    if config.lr_schedule == "plateau":
        return sch.ReduceLROnPlateau(opt, mode="min", factor=config.lr_factor,
                                     patience=config.lr_patience, min_lr=config.min_lr)
    if config.lr_schedule == "cosine":
        return sch.CosineAnnealingLR(opt, T_max=config.max_epochs, eta_min=config.min_lr)
    if config.lr_schedule == "step":
        return sch.StepLR(opt, step_size=config.lr_step_epochs, gamma=config.lr_factor)
    return sch.LambdaLR(opt, lambda epoch: 1.0)


def _same_config(saved, config):
    """A checkpoint's config equals ``config`` (keys added since take their defaults)."""
    now = json.loads(json.dumps(config.to_dict()))
    defaults = json.loads(json.dumps(TrainConfig().to_dict()))
    saved = {**{k: defaults[k] for k in now if k not in saved}, **saved}
    return saved == now


def _loss(out, y, w, phase):
    if phase == "mse":
        return mean_squared_error(out[:, 0], y, w)
    return gaussian_nll(out[:, 0], out[:, 1], y, weight=w)


def _set_phase(model, phase, config):
    """Training mode; for a head-only NLL fine-tuning (seed 003) everything but the head
    is frozen and in eval mode (batch-norm statistics and dropout of the body fixed)."""
    head_only = phase == "nll" and config.pretrain_mse_epochs > 0 and config.finetune == "head"
    for name, p in model.named_parameters():
        p.requires_grad_(not head_only or name.startswith("head."))
    model.train()
    if head_only:
        model.eval()
        model.head.train()


@dataclass
class MemberResult:
    model: torch.nn.Module
    seed: int
    history: list
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    seconds: float


def augment(x, rng):
    """Random 90-degree rotation and flip of each image (the dihedral group D4).

    Parameters
    ----------
    x : `torch.Tensor`, shape (N, C, H, W) with H == W
    rng : `numpy.random.Generator`

    Returns
    -------
    `torch.Tensor` of the same shape: every image rotated by k*90 degrees (k in 0..3)
    and, with probability 1/2, flipped left-right; bands are not touched.
    """
    n = x.shape[0]
    k = rng.integers(0, 4, n)
    flip = rng.integers(0, 2, n).astype(bool)
    out = torch.empty_like(x)
    for kk in range(4):
        for ff in (False, True):
            idx = np.flatnonzero((k == kk) & (flip == ff))
            if len(idx) == 0:
                continue
            t = torch.from_numpy(idx)
            part = x[t]
            if ff:
                part = torch.flip(part, dims=(3,))
            if kk:
                part = torch.rot90(part, kk, dims=(2, 3))
            out[t] = part
    return out


class _Arrays:
    """Normalised tensors of one split."""

    def __init__(self, data, norm, weights=None):
        self.x = torch.from_numpy(norm.images(data.ebi))
        self.z = torch.from_numpy(norm.redshift(data.z))
        self.y = torch.from_numpy(norm.target(data.log10_mass))
        self.w = None if weights is None else torch.from_numpy(np.asarray(weights, np.float32))

    def __len__(self):
        return len(self.y)


@torch.no_grad()
def evaluate_loss(model, arrays, batch_size=500, phase="nll"):
    """Mean (weighted) NLL (or, ``phase="mse"``, squared error of the mean) of ``model``
    on a split, in eval mode, no augmentation."""
    model.eval()
    total, wsum = 0.0, 0.0
    for s in range(0, len(arrays), batch_size):
        sl = slice(s, s + batch_size)
        out = model(arrays.x[sl].contiguous(memory_format=torch.channels_last), arrays.z[sl])
        w = arrays.w[sl] if arrays.w is not None else torch.ones(len(out))
        loss = _loss(out, arrays.y[sl], w, phase)
        total += float(loss) * float(w.sum())
        wsum += float(w.sum())
    return total / max(wsum, 1e-30)


def _optimizer_tensors(opt):
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"opt.{idx}.{key}"] = val.reshape(-1) if val.dim() == 0 else val
    return tensors, sd["param_groups"]


def _restore_optimizer(opt, tensors, param_groups):
    state = {}
    for name, val in tensors.items():
        if not name.startswith("opt."):
            continue
        _, idx, key = name.split(".", 2)
        if key == "step":
            val = val.reshape(())
        state.setdefault(int(idx), {})[key] = val
    opt.load_state_dict({"state": state, "param_groups": param_groups})


def _save_checkpoint(ckpt_dir, model, best_state, opt, sched, info):
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in best_state.items()})
    opt_tensors, groups = _optimizer_tensors(opt)
    tensors.update(opt_tensors)
    save_state(os.path.join(ckpt_dir, "checkpoint.safetensors"), tensors)
    meta = {**info, "param_groups": groups, "scheduler": sched.state_dict()}
    atomic_write_text(os.path.join(ckpt_dir, "checkpoint.json"),
                      json.dumps(meta, indent=1, default=float))


def train_member(train, val, config: TrainConfig, seed: int, normalisation: Normalisation,
                 checkpoint_dir=None, progress=True, desc=None, sample_weights=True):
    """Train one ensemble member.

    Parameters
    ----------
    train, val : `~astro_clustermass.cnn.dataset.TrainingData`
    config : `TrainConfig`
    seed : int
        Seeds the weight initialisation, batch order and augmentation.
    normalisation : `~astro_clustermass.cnn.dataset.Normalisation`
    checkpoint_dir : str, optional
        Where to write ``checkpoint.safetensors`` / ``checkpoint.json`` after every
        epoch; if a checkpoint is there, training resumes from it. A finished member
        (``done: true``) is returned without training.
    progress : bool
        tqdm bar over epochs.

    Returns
    -------
    `MemberResult` (model holds the best-validation weights, eval mode)
    """
    torch.manual_seed(seed)
    model, _ = config.build_model()
    opt = make_optimizer(model, config)
    sched = make_scheduler(opt, config)
    w_train = w_val = None
    if config.uniform_mass_weights:
        ref = train.log10_mass
        w_train = uniform_mass_weights(ref, config.weight_bin_width, config.weight_max,
                                       power=config.weight_power)
        w_val = uniform_mass_weights(val.log10_mass, config.weight_bin_width,
                                     config.weight_max, reference=ref,
                                     power=config.weight_power)
    tr = _Arrays(train, normalisation, w_train)
    va = _Arrays(val, normalisation, w_val)

    start_epoch, history = 0, []
    best_val, best_epoch, bad_epochs, elapsed = math.inf, -1, 0, 0.0
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    done = False
    if checkpoint_dir is not None:
        os.makedirs(checkpoint_dir, exist_ok=True)
        jpath = os.path.join(checkpoint_dir, "checkpoint.json")
        if os.path.exists(jpath):
            with open(jpath) as fh:
                info = json.load(fh)
            if info.get("seed") != seed or not _same_config(info.get("config", {}), config):
                raise ValueError(f"checkpoint in {checkpoint_dir} was made with other settings "
                                 "(seed or training config); use another directory")
            tensors, _ = load_state(os.path.join(checkpoint_dir, "checkpoint.safetensors"))
            model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
            best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
            _restore_optimizer(opt, tensors, info["param_groups"])
            sched.load_state_dict(info["scheduler"])
            start_epoch = info["epoch"] + 1
            history = info["history"]
            best_val, best_epoch = info["best_val_loss"], info["best_epoch"]
            bad_epochs, elapsed, done = info["bad_epochs"], info["seconds"], info["done"]
            log.info("resuming member seed %d from epoch %d", seed, start_epoch)

    epochs = range(start_epoch, config.max_epochs)
    bar = None
    if progress and not done:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.max_epochs, initial=start_epoch, desc=desc or f"seed {seed}",
                   unit="epoch")
    n = len(tr)
    for epoch in epochs:
        if done:
            break
        t0 = time.perf_counter()
        phase = "mse" if epoch < config.pretrain_mse_epochs else "nll"
        if epoch == config.pretrain_mse_epochs and epoch > 0:  # the NLL starts afresh
            best_val, best_epoch, bad_epochs = math.inf, -1, 0
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.best, sched.num_bad_epochs, sched.cooldown_counter = math.inf, 0, 0
        _set_phase(model, phase, config)
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(n)
        total, wsum = 0.0, 0.0
        for s in range(0, n, config.batch_size):
            idx = torch.from_numpy(order[s:s + config.batch_size])
            x = tr.x[idx]
            if config.augment:
                x = augment(x, rng)
            # channels-last is ~1.5x faster for these convolutions on CPU
            x = x.contiguous(memory_format=torch.channels_last)
            out = model(x, tr.z[idx])
            w = tr.w[idx] if tr.w is not None else None
            loss = _loss(out, tr.y[idx], w, phase)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bw = float(w.sum()) if w is not None else float(len(idx))
            total += float(loss.detach()) * bw
            wsum += bw
        train_loss = total / wsum
        val_loss = evaluate_loss(model, va, phase=phase)
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(val_loss)
        else:
            sched.step()
        dt = time.perf_counter() - t0
        elapsed += dt
        lr = opt.param_groups[0]["lr"]
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                        "lr": lr, "seconds": dt, "phase": phase})
        if val_loss < best_val:
            best_val, best_epoch, bad_epochs = val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        if bad_epochs >= config.early_stopping_patience:
            done = True
        if epoch == config.max_epochs - 1:
            done = True
        if bar is not None:
            bar.update(1)
            bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val_loss:.3f}",
                            best=f"{best_val:.3f}", lr=f"{lr:.1e}")
        if checkpoint_dir is not None:
            _save_checkpoint(checkpoint_dir, model, best_state, opt, sched, {
                "seed": seed, "config": config.to_dict(), "epoch": epoch, "history": history,
                "best_val_loss": best_val, "best_epoch": best_epoch, "bad_epochs": bad_epochs,
                "seconds": elapsed, "done": done})
    if bar is not None:
        bar.close()
    model.load_state_dict(best_state)
    model.requires_grad_(True)
    model.eval()
    return MemberResult(model, seed, history, best_epoch, best_val, len(history), elapsed)


def train_ensemble(data, out_dir, work_dir, n_members=5, config=None, base_seed=0,
                   selection=None, split_seed=0, progress=True, overwrite=False,
                   dataset_path=None, extra_manifest=None, only_member=None,
                   split_by="cluster"):
    """Train an ensemble and write it (weights + manifest + training-curve plot).

    Parameters
    ----------
    data : `~astro_clustermass.cnn.dataset.TrainingData`
    out_dir : str
        Ensemble directory to write (``manifest.yaml``, ``member_XX.safetensors``,
        ``training_curves.png``).
    work_dir : str
        Checkpoints (one sub-directory per member; training resumes from them) and the
        test-set predictions (``test_predictions.ecsv``).
    n_members : int
    config : `TrainConfig`
    base_seed : int
        Member i is seeded with ``base_seed + i``.
    selection : str
        Default `~astro_clustermass.cnn.dataset.DEFAULT_SELECTION`.
    split_seed : int
    split_by : {'cluster', 'field'}
        Unit of the train/validation/test split
        (`~astro_clustermass.cnn.dataset.prepare_splits`).
    only_member : int, optional
        Train (or resume) only this member's checkpoint and return; a later call without
        it finds the finished checkpoints and assembles the ensemble. This lets members
        train in parallel processes.

    Returns
    -------
    manifest : dict
    """
    from .. import __version__
    from .dataset import DEFAULT_SELECTION, Normalisation, file_sha256, prepare_splits
    from .ensemble import Ensemble
    from .io import save_ensemble
    from .metrics import ensemble_metrics

    config = config or TrainConfig()
    selection = DEFAULT_SELECTION if selection is None else selection
    splits, split_info = prepare_splits(data, selection, split_seed, split_by=split_by)
    train, val, test = splits["train"], splits["val"], splits["test"]
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"selection {selection!r} leaves {len(train)} training and "
                         f"{len(val)} validation clusters")
    norm = Normalisation.fit(train.z, train.log10_mass)
    os.makedirs(work_dir, exist_ok=True)
    if only_member is not None:  # one member only (for parallel workers); no export
        i = int(only_member)
        res = train_member(train, val, config, base_seed + i, norm,
                           checkpoint_dir=os.path.join(work_dir, f"member_{i:02d}"),
                           progress=progress, desc=f"member {i + 1}/{n_members}")
        return {"member": i, "best_val_loss": res.best_val_loss, "epochs_run": res.epochs_run}
    members, infos = [], []
    for i in range(n_members):
        seed = base_seed + i
        res = train_member(train, val, config, seed, norm,
                           checkpoint_dir=os.path.join(work_dir, f"member_{i:02d}"),
                           progress=progress, desc=f"member {i + 1}/{n_members}")
        members.append(res.model)
        infos.append({"seed": seed, "epochs_run": res.epochs_run, "best_epoch": res.best_epoch,
                      "best_val_loss": float(res.best_val_loss),
                      "train_seconds": round(res.seconds, 1),
                      "seconds_per_epoch": round(res.seconds / max(res.epochs_run, 1), 2),
                      "history": res.history})
    ens = Ensemble(members, norm)
    metrics = {}
    for name, part in (("train", train), ("val", val), ("test", test)):
        if len(part) == 0:
            continue
        mean, sstar, mu, sig = ens.predict(part.ebi, part.z)
        metrics[name] = ensemble_metrics(part.log10_mass, mean, sstar, mu, sig)
        if name == "test":
            _write_predictions(os.path.join(work_dir, "test_predictions.ecsv"), part,
                               mean, sstar, mu, sig)
    ebi_params = data.ebi_parameters
    from .model import count_parameters

    manifest = {
        "name": os.path.basename(os.path.normpath(out_dir)),
        "package_version": __version__,
        "torch_version": torch.__version__,
        "architecture": {"name": config.architecture,
                         "config": config.build_model()[1],
                         "n_parameters": count_parameters(members[0])},
        "input": {"images": "energy-band images (N, ny, nx, nbands) counts, channel-last",
                  "image_shape": list(data.ebi.shape[1:]), "redshift": "z"},
        "normalisation": norm.to_dict(),
        "ebi_parameters": ebi_params,
        "dataset": {"path": os.path.abspath(dataset_path or data.path or ""),
                    "sha256": file_sha256(dataset_path or data.path)
                    if (dataset_path or data.path) else None,
                    "attrs": {k: v for k, v in (data.attrs or {}).items()
                              if k not in ("ebi_parameters",)},
                    **split_info,
                    "log10M500c_range": [round(float(train.log10_mass.min()), 3),
                                         round(float(train.log10_mass.max()), 3)],
                    "z_range": [round(float(train.z.min()), 3), round(float(train.z.max()), 3)]},
        "training": {**config.to_dict(),
                     "loss": "Gaussian NLL (seed 000 Eq. 1)" + (
                         f" after {config.pretrain_mse_epochs} epochs of MSE on the mean"
                         if config.pretrain_mse_epochs else ""),
                     "augmentation": "random 90-degree rotations and left-right flips"
                     if config.augment else "none",
                     "torch_threads": torch.get_num_threads(), "base_seed": base_seed},
        "metrics": metrics,
        **(extra_manifest or {}),
        "members": [{k: v for k, v in info.items() if k != "history"} for info in infos],
    }
    save_ensemble(out_dir, members, manifest, overwrite=overwrite)
    _plot_curves(os.path.join(out_dir, "training_curves.png"), infos)
    return manifest


def _write_predictions(path, part, mean, sstar, mu, sig):
    from astropy.table import Table

    t = Table(part.catalog, copy=True)
    t["log10M500c_true"] = part.log10_mass
    t["log10M500c_cnn"] = mean
    t["log10M500c_cnn_err"] = sstar
    t["log10M500c_members"] = mu.T
    t["log10M500c_members_err"] = sig.T
    t.write(path, overwrite=True)


def _plot_curves(path, infos):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, info in enumerate(infos):
        h = info["history"]
        ep = [r["epoch"] for r in h]
        line, = ax.plot(ep, [r["train_loss"] for r in h], lw=1, label=f"member {i} train")
        ax.plot(ep, [r["val_loss"] for r in h], lw=1, ls="--", color=line.get_color(),
                label=f"member {i} val")
        ax.axvline(info["best_epoch"], color=line.get_color(), lw=0.5, alpha=0.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel("Gaussian NLL (normalised target)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
