#!/usr/bin/env python
"""Scan training recipes on ONE validation split (seed 001 Table 3 style) and measure
what ensemble size buys.

Every recipe (default: `astro_clustermass.cnn.scan.DEFAULT_RECIPES`, the thesis's and
labs' options one at a time, and the other architectures; or a YAML/JSON file of
``name: {TrainConfig keys}``) is trained on the same training split with the same member
seeds and measured on the same validation split; the test split is not used. Then the
members of ``--size-recipe`` (trained up to ``--size-members``) give the ensemble-size
table (5, 10, 20 members: mean and spread over random subsets).

Writes ``OUT/scan.rst`` (both tables, with the command, date, machine and load),
``OUT/scan.json`` (all figures) and ``OUT/size.json``. Checkpoints go to ``OUT/work``, so
an interrupted scan resumes, and more members reuse the finished ones.

Usage (the real scan, once the realistic training sky exists)::

    python scripts/scan_recipes.py WORK/dataset.h5 --out scan/ --members 3 \\
        --max-epochs 300 --size-recipe seed000 --size-members 20 --threads 2

A demonstration on the tests' synthetic images (minutes)::

    python scripts/scan_recipes.py --synthetic 600 --out /tmp/scan_demo --max-epochs 4 \\
        --members 2 --size-recipe seed000 --size-members 6 --sizes 2 4 6
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def _load_recipes(path, only):
    from astro_clustermass.cnn.scan import DEFAULT_RECIPES

    recipes = dict(DEFAULT_RECIPES)
    if path:
        import yaml

        with open(path) as fh:
            recipes = yaml.safe_load(fh)
        if not isinstance(recipes, dict):
            raise SystemExit(f"{path}: expected a mapping name -> TrainConfig keys")
    if only:
        missing = [n for n in only if n not in recipes]
        if missing:
            raise SystemExit(f"unknown recipe(s) {missing}; known: {sorted(recipes)}")
        recipes = {n: recipes[n] for n in only}
    return recipes


def _data(args):
    if args.synthetic:
        sys.path.insert(0, os.path.join(REPO, "tests"))
        from test_cnn import synthetic_data

        return synthetic_data(args.synthetic, seed=0), "", \
            f"{args.synthetic} synthetic images (tests/test_cnn.py synthetic_data)"
    from astro_clustermass.cnn.dataset import DEFAULT_SELECTION, read_dataset

    sel = DEFAULT_SELECTION if args.selection is None else args.selection
    return read_dataset(args.dataset), sel, args.dataset


def _machine():
    try:
        cpu = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
               if ln.startswith("model name")][0]
    except (OSError, IndexError):
        cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores"


def _uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dataset", nargs="?", help="training data set (HDF5)")
    p.add_argument("--synthetic", type=int, default=0, metavar="N",
                   help="instead of a data set: N synthetic images of the tests")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--recipes", default=None, help="YAML/JSON file: name -> TrainConfig keys")
    p.add_argument("--only", nargs="+", default=None, help="scan only these recipes")
    p.add_argument("--members", type=int, default=1, help="members per recipe (default 1)")
    p.add_argument("--max-epochs", type=int, default=300)
    p.add_argument("--patience", type=int, default=25, help="early-stopping patience")
    p.add_argument("--mse-epochs", type=int, default=None,
                   help="replace pretrain_mse_epochs of the recipes that pre-train with MSE "
                        "(e.g. for a short demonstration)")
    p.add_argument("--selection", default=None, help="default: the eFEDS selection")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--split-by", choices=("cluster", "field"), default="cluster",
                   help="unit of the split (field: every cluster of a simulated field "
                        "in the same set)")
    p.add_argument("--size-recipe", default=None,
                   help="recipe whose members make the ensemble-size table")
    p.add_argument("--size-members", type=int, default=20)
    p.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if bool(args.dataset) == bool(args.synthetic):
        p.error("give a data set or --synthetic N")

    import torch

    import astro_clustermass.cnn  # noqa: F401  (before torch: OMP_WAIT_POLICY)
    from astro_clustermass.cnn.scan import (
        SIZE_COLUMNS,
        ensemble_size_table,
        format_table,
        scan_recipes,
    )
    from astro_clustermass.io.atomic import atomic_write_text

    torch.set_num_threads(args.threads)
    recipes = _load_recipes(args.recipes, args.only)
    if args.mse_epochs is not None:
        recipes = {n: ({**r, "pretrain_mse_epochs": args.mse_epochs}
                       if r.get("pretrain_mse_epochs") else r) for n, r in recipes.items()}
    data, selection, source = _data(args)
    os.makedirs(args.out, exist_ok=True)
    work = os.path.join(args.out, "work")
    base = {"max_epochs": args.max_epochs, "early_stopping_patience": args.patience}
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = _uptime()
    common = dict(selection=selection, split_seed=args.split_seed, base_config=base,
                  split_by=args.split_by)
    rows, preds = scan_recipes(data, recipes, work, members=args.members, **common)
    size_rows = []
    if args.size_recipe:
        if args.size_recipe not in recipes:
            raise SystemExit(f"--size-recipe {args.size_recipe!r} is not among the recipes")
        _, more = scan_recipes(data, {args.size_recipe: recipes[args.size_recipe]}, work,
                               members=args.size_members, **common, log=lambda s: None)
        mu, sig = more[args.size_recipe]
        size_rows = ensemble_size_table(mu, sig, more["truth"], sizes=args.sizes)
    load_after = _uptime()
    cmd = "python scripts/scan_recipes.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = [f"Recipe scan on one validation split ({source}, selection {selection!r}, "
            f"split seed {args.split_seed} by {args.split_by}, {len(preds['truth'])} validation "
            "clusters)", "",
            f"Command: ``{cmd}``", f"Date: {started:%Y-%m-%d %H:%M} UTC; machine: "
            f"{_machine()}; torch {torch.__version__}, {args.threads} threads",
            f"Load before: {load_before}", f"Load after: {load_after}", "",
            format_table(rows)]
    if size_rows:
        text += ["", f"Ensemble size ({args.size_recipe}, subsets of "
                     f"{args.size_members} members):", "",
                 format_table(size_rows, columns=SIZE_COLUMNS)]
    atomic_write_text(os.path.join(args.out, "scan.rst"), "\n".join(text) + "\n")
    meta = {"command": cmd, "date": started.isoformat(timespec="seconds"),
            "machine": _machine(), "load_before": load_before, "load_after": load_after,
            "source": source, "selection": selection, "recipes": recipes, "base": base}
    atomic_write_text(os.path.join(args.out, "scan.json"),
                      json.dumps({**meta, "rows": rows}, indent=1, default=float))
    atomic_write_text(os.path.join(args.out, "size.json"),
                      json.dumps({**meta, "recipe": args.size_recipe, "rows": size_rows},
                                 indent=1, default=float))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
