#!/usr/bin/env python
"""Make (or reproduce) the shipped default CNN ensemble, step by step and resumably.

Steps, each skipped when its output exists (so an interrupted run is resumed by running
the same command again):

1. ``simulate``: the stamp-mode simulator (`astro_clustermass.simulate.simulate_stamps`,
   halo mass function from ``--log10-mmin``) writes ``--realisations`` realisations of
   ``--halos`` stamps into ``WORK/sim/real_XXX`` (event files, truth and detection
   tables, chunks of 400 stamps), realisation *k* seeded with ``--sim-seed + k``;
   ``--sim-until HH:MM`` / ``--sim-chunks N`` / ``touch WORK/sim/STOP`` bound it;
2. ``dataset``: `astro_clustermass.cnn.training_set.build_dataset` selects the detections
   matched to a stamp's central halo with ``EXT_LIKE > 6 & DET_LIKE > 5``, takes the true
   M500c and z from the truth tables, builds the EBIs at the detected positions with the
   default `EBIParameters` and writes ``WORK/dataset.h5``;
3. ``train``: ``--members`` seed-000 networks (seeds 0..N-1, split seed 0), checkpoints in
   ``WORK/train`` (resumable), ensemble written to ``WORK/ensemble``;
4. ``export``: the ensemble (weights + manifest + curves) copied into
   ``astro_clustermass/data/cnn/default/``;
5. ``evaluate``: ``astro-clustermass evaluate-ensemble`` on the test split ->
   ``WORK/evaluation/metrics.json`` and figures.

Usage (the shipped ensemble, in one command; it was made in two, data set then training,
whose command lines are in the manifest's ``notes`` and ``made_by``)::

    python scripts/train_default_ensemble.py --work /tmp/cw_58 --source simulate \
        --halos 40000 --sim-seed 1000 --log10-mmin 13.3 --sim-chunks 54 --sim-workers 2 \
        --members 5 --parallel 5 --threads 2 --max-epochs 300 --patience 20 --lr-patience 8 \
        --uniform-mass-weights --weight-power 0.5

The v2 rebuild (issue 22) cuts the training images from simulated survey fields instead
(steps 1-2 are then ``astro-clustermass dataset --mode field``, see docs/cnn.rst) and
takes the recipe chosen by ``scripts/scan_recipes.py`` as TrainConfig keys in JSON::

    python scripts/train_default_ensemble.py --work /tmp/cw_v2 --sim-mode field \
        --fields 210 --field-area 20 --sim-seed 2000 --log10-mmin 13.0 --sim-workers 2 \
        --members 5 --parallel 5 --threads 2 --recipe '{"dropout": 0.2}'

Training is deterministic for a given machine, thread count and torch version (see
docs/cnn.rst); the manifest records all three.
"""

from __future__ import annotations

import argparse
import glob
import os
import shlex
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def step_simulate(args):
    """Stamp-mode simulator runs in WORK/sim/real_XXX (chunked, resumable, time-limited)."""
    import logging

    from astro_clustermass.cnn.training_set import simulate_realisations, training_config

    logging.getLogger("astro_clustermass").setLevel(logging.INFO)
    if os.path.exists(os.path.join(args.work, "dataset.h5")):
        log("simulate: dataset exists, skipped")
        return sorted(glob.glob(os.path.join(args.work, "sim", "real_*")))
    config = training_config(log10_mmin=args.log10_mmin)
    log(f"simulate: {args.realisations} realisation(s) x {args.halos} stamps, seed "
        f"{args.sim_seed}, log10_mmin {config.log10_mmin}, until {args.sim_until or '-'} UTC "
        f"(touch {os.path.join(args.work, 'sim', 'STOP')} to stop after the current chunk)")
    return simulate_realisations(os.path.join(args.work, "sim"), args.realisations,
                                 seed=args.sim_seed, workers=args.sim_workers,
                                 n_halos=args.halos, config=config, until=args.sim_until,
                                 max_chunks=args.sim_chunks, progress=False,
                                 # a batch of chunks per call, so that workers > 1 share it
                                 chunks_per_call=max(1, 2 * args.sim_workers))


def step_field_dataset(args):
    """Steps 1-2 from survey fields: `make_training_set` (resumable, chunk = field)."""
    import logging

    from astro_clustermass.cnn.training_set import make_training_set, training_config

    logging.getLogger("astro_clustermass").setLevel(logging.INFO)
    path = os.path.join(args.work, "dataset.h5")
    if os.path.exists(path) and os.path.exists(os.path.join(args.work, "fields", "DONE")):
        log(f"dataset: {path} exists, skipped")
        return path
    res = make_training_set(os.path.join(args.work, "fields"), path, mode="field",
                            chunks=args.fields, seed=args.sim_seed, area=args.field_area,
                            config=training_config(log10_mmin=args.log10_mmin),
                            workers=args.sim_workers, until=args.sim_until, progress=False,
                            report=lambda k, n, d, m, s: log(f"simulate: field {k}/{n} {d}"))
    if res["chunks_done"] == res["chunks_planned"]:
        open(os.path.join(args.work, "fields", "DONE"), "w").close()
    log(f"dataset: {path}: {res['clusters']} clusters from {res['chunks_done']} fields")
    return path


def step_dataset(args, sim_dirs):
    from astro_clustermass.cnn.training_set import build_dataset

    path = os.path.join(args.work, "dataset.h5")
    if os.path.exists(path):
        log(f"dataset: {path} exists, skipped")
        return path
    if not sim_dirs:
        raise SystemExit("dataset: no finished simulator chunk to build a data set from")
    build_dataset(sim_dirs, path, progress=True)
    log(f"dataset: {path}")
    return path


def step_train(args, dataset):
    import torch

    from astro_clustermass.cnn.dataset import read_dataset  # before torch (OMP_WAIT_POLICY)
    from astro_clustermass.cnn.train import TrainConfig, train_ensemble

    out = os.path.join(args.work, "ensemble")
    if os.path.exists(os.path.join(out, "manifest.yaml")):
        log(f"train: {out} exists, skipped")
        return out
    import json

    config = TrainConfig(**{"max_epochs": args.max_epochs,
                            "early_stopping_patience": args.patience,
                            "lr_patience": args.lr_patience,
                            "uniform_mass_weights": args.uniform_mass_weights,
                            "weight_power": args.weight_power,
                            **json.loads(args.recipe or "{}")})
    common = dict(n_members=args.members, config=config, base_seed=0, split_seed=0,
                  split_by=args.split_by, dataset_path=dataset)
    work = os.path.join(args.work, "train")
    if args.member is not None:  # worker: one member, args.threads threads
        torch.set_num_threads(args.threads)
        train_ensemble(read_dataset(dataset), out, work, only_member=args.member,
                       progress=False, **common)
        return None
    deadline = _parse_until(args.train_until)
    n_members = args.members
    if args.parallel > 1:
        # members in `parallel` worker processes of threads // parallel threads each
        per = max(1, args.threads // args.parallel)
        pending = list(range(args.members))
        running = []
        while pending or running:
            while pending and len(running) < args.parallel:
                i = pending.pop(0)
                cmd = [sys.executable, os.path.abspath(__file__), "--work", args.work,
                       "--dataset", dataset, "--member", str(i), "--threads", str(per),
                       "--members", str(args.members), "--max-epochs", str(args.max_epochs),
                       "--patience", str(args.patience), "--lr-patience", str(args.lr_patience),
                       "--split-by", args.split_by]
                if args.uniform_mass_weights:
                    cmd += ["--uniform-mass-weights", "--weight-power", str(args.weight_power)]
                if args.recipe:
                    cmd += ["--recipe", args.recipe]
                logf = open(os.path.join(args.work, f"member_{i:02d}.log"), "a")
                running.append((i, subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT),
                                logf))
                log(f"train: member {i} started ({per} thread(s))")
            time.sleep(5)
            if deadline is not None and _utc_now() >= deadline:
                log(f"train: time limit {args.train_until} UTC reached: stopping members "
                    f"{[i for i, _, _ in running]} after their last finished epoch")
                for i, proc, logf in running:
                    _stop_after_epoch(proc, os.path.join(args.work, "train", f"member_{i:02d}"))
                    logf.close()
                running = []
                n_members = _finish_at_deadline(args, pending)
                break
            for item in list(running):
                i, proc, logf = item
                if proc.poll() is not None:
                    logf.close()
                    running.remove(item)
                    if proc.returncode != 0:
                        raise SystemExit(f"member {i} failed (see member_{i:02d}.log)")
                    log(f"train: member {i} done")
        threads_note = f"{args.parallel} parallel worker processes x {per} torch thread(s)"
    else:
        threads_note = f"{args.threads} torch thread(s)"
    torch.set_num_threads(args.threads)
    extra = {"name": "default",
             "made_by": "scripts/train_default_ensemble.py " + shlex.join(sys.argv[1:]),
             "member_training": threads_note,
             "notes": args.notes}
    if n_members != args.members:
        extra["notes"] = (extra["notes"] + f" Only {n_members} of {args.members} members had "
                          f"started by the time limit.").strip()
    common["n_members"] = n_members
    stopped = _stopped_members(work, n_members)
    if stopped:
        extra["stopped_at_time_limit"] = {
            "train_until_utc": args.train_until,
            "members": {f"member_{i:02d}": e for i, e in stopped.items()}}
    train_ensemble(read_dataset(dataset), out, work, extra_manifest=extra, **common)
    return out


def _utc_now():
    import datetime

    return datetime.datetime.now(datetime.timezone.utc)


def _parse_until(text):
    if not text:
        return None
    hh, mm = (int(v) for v in text.split(":"))
    return _utc_now().replace(hour=hh, minute=mm, second=0, microsecond=0)


def _stop_after_epoch(proc, ckpt_dir):
    """Terminate a member worker between two checkpoint writes (never half-way)."""
    st = os.path.join(ckpt_dir, "checkpoint.safetensors")
    js = os.path.join(ckpt_dir, "checkpoint.json")
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < 600:
        # the json is replaced right after the weights: both written means consistent
        if (not os.path.exists(st)) or (os.path.exists(js)
                                        and os.path.getmtime(js) >= os.path.getmtime(st)):
            proc.kill()
            break
        time.sleep(0.05)
    proc.wait()


def _finish_at_deadline(args, pending):
    """Mark the started members' checkpoints finished (best-validation weights are kept)."""
    import json

    n = 0
    for i in range(args.members):
        js = os.path.join(args.work, "train", f"member_{i:02d}", "checkpoint.json")
        if not os.path.exists(js):
            break
        with open(js) as fh:
            info = json.load(fh)
        if not info["done"]:
            info["done"] = True
            info["stopped_at_time_limit"] = args.train_until
            with open(js + ".tmp", "w") as fh:
                json.dump(info, fh, indent=1, default=float)
            os.replace(js + ".tmp", js)
            log(f"train: member {i} stopped after {info['epoch'] + 1} epochs "
                f"(best epoch {info['best_epoch']}, val loss {info['best_val_loss']:.4f})")
        n = i + 1
    return n


def _stopped_members(work, n_members):
    import json

    out = {}
    for i in range(n_members):
        js = os.path.join(work, f"member_{i:02d}", "checkpoint.json")
        if os.path.exists(js):
            with open(js) as fh:
                info = json.load(fh)
            if info.get("stopped_at_time_limit"):
                out[i] = int(info["epoch"]) + 1
    return out


def step_export(args, ens_dir):
    dest = os.path.join(REPO, "astro_clustermass", "data", "cnn", "default")
    os.makedirs(dest, exist_ok=True)
    for old in glob.glob(os.path.join(dest, "*")):
        os.remove(old)
    for f in sorted(os.listdir(ens_dir)):
        shutil.copy2(os.path.join(ens_dir, f), os.path.join(dest, f))
    log(f"export: {ens_dir} -> {dest}")
    return dest


def step_evaluate(args, dataset, weights):
    out = os.path.join(args.work, "evaluation")
    cmd = [sys.executable, "-m", "astro_clustermass.cli", "evaluate-ensemble", dataset,
           "--weights", weights, "--out", out, "--threads", str(args.threads)]
    log("evaluate: " + " ".join(cmd))
    subprocess.run(cmd, check=True, cwd=REPO)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", default="/work/cnn_work", help="working directory (outside git)")
    p.add_argument("--realisations", type=int, default=1)
    p.add_argument("--halos", type=int, default=40_000,
                   help="stamps (central halos) per realisation; chunks of 400")
    p.add_argument("--log10-mmin", type=float, default=13.3,
                   help="lower halo mass of the training simulation, log10(M500c/Msun) "
                        "(simulator default 13.0; see docs/cnn.rst)")
    p.add_argument("--sim-until", default=None, metavar="HH:MM",
                   help="start no simulator chunk after this UTC time (the data set is "
                        "built from the chunks finished by then)")
    p.add_argument("--sim-seed", type=int, default=1000)
    p.add_argument("--sim-mode", choices=("stamps", "field"), default="stamps",
                   help="stamps (the shipped ensemble) or survey fields (v2, issue 22)")
    p.add_argument("--fields", type=int, default=60, help="field mode: number of fields")
    p.add_argument("--field-area", type=float, default=20.0,
                   help="field mode: area of each field [deg^2]")
    p.add_argument("--recipe", default=None,
                   help="TrainConfig keys as JSON, e.g. '{\"dropout\": 0.2}' (the recipe "
                        "chosen by scripts/scan_recipes.py)")
    p.add_argument("--sim-workers", type=int, default=1)
    p.add_argument("--dataset", default=None, help="use this data set instead of steps 1-2")
    p.add_argument("--source", choices=("simulate",), default="simulate",
                   help="the package simulator (the only source since the stand-in went)")
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--split-by", choices=("cluster", "field"), default="cluster",
                   help="unit of the train/validation/test split (field: every cluster "
                        "of a simulated field in the same set)")
    p.add_argument("--max-epochs", type=int, default=300)
    p.add_argument("--patience", type=int, default=25)
    p.add_argument("--lr-patience", type=int, default=10)
    p.add_argument("--uniform-mass-weights", action="store_true",
                   help="weight the training clusters so that their log10 M500c distribution "
                        "is effectively uniform (seed 000 sect. 4)")
    p.add_argument("--weight-power", type=float, default=1.0,
                   help="with --uniform-mass-weights: weight = (clusters in the 0.1-dex mass "
                        "bin)^-POWER; 1 flattens fully, 0.5 half-way (default 1)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--parallel", type=int, default=1,
                   help="train members in this many processes (threads are shared out)")
    p.add_argument("--train-until", default=None, metavar="HH:MM",
                   help="with --parallel: at this UTC time stop the members after their last "
                        "finished epoch and assemble the ensemble from their best weights "
                        "(recorded in the manifest)")
    p.add_argument("--sim-chunks", type=int, default=None,
                   help="simulate (and use) at most this many chunks per realisation")
    p.add_argument("--member", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--notes", default="", help="free text recorded in the manifest")
    p.add_argument("--stop-after", choices=("dataset",), default=None)
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--no-evaluate", action="store_true")
    args = p.parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    if args.dataset:
        dataset = args.dataset
    elif args.sim_mode == "field":
        dataset = step_field_dataset(args)
    else:
        sim_dirs = step_simulate(args)
        dataset = step_dataset(args, sim_dirs)
    if args.stop_after == "dataset":
        return 0
    ens = step_train(args, dataset)
    if ens is None:  # a worker
        return 0
    weights = ens if args.no_export else step_export(args, ens)
    if not args.no_evaluate:
        step_evaluate(args, dataset, weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
