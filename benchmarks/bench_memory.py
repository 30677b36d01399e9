"""Peak memory of ``astro-clustermass estimate`` on a large catalogue.

Usage::

    python benchmarks/bench_memory.py [--n 1000000] [--dir /tmp/acm_mem] [--json out.json]
                                      [-e lx-chiu22 -e cr-erass1] [--profile]

Writes a FITS catalogue of ``--n`` clusters (z uniform 0.05-1.0, L_X log-uniform
1e42-1e45 erg/s with 10 % errors, count rates log-uniform 1e-3-1 ct/s with 10 % errors,
RA/DEC uniform; 1 % of the rows have a NaN L_X and 1 % a count rate of zero, so that
rows carry reasons), then runs ``astro-clustermass estimate CATALOG -o OUT.fits -e ...``
in a child process and reports its wall time and peak resident memory
(``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``: the largest resident set of the
child, i.e. of the whole command, reading and writing included). The catalogue alone is
reported for scale (its size on disk).

``--profile`` instead runs the command's steps in this process (``read_catalog``,
``add_mass_columns`` with each estimator's run and each estimate's columns,
``write_table``) and reports the peak resident memory of the process after each.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time


def make_catalog(path, n, seed=1):
    import numpy as np
    from astropy import units as u
    from astropy.table import QTable

    rng = np.random.default_rng(seed)
    lx = 10 ** rng.uniform(42, 45, n)
    rate = 10 ** rng.uniform(-3, 0, n)
    lx[rng.random(n) < 0.01] = np.nan
    rate[rng.random(n) < 0.01] = 0.0
    table = QTable({
        "RA": rng.uniform(0, 360, n) * u.deg, "DEC": rng.uniform(-80, 80, n) * u.deg,
        "z": rng.uniform(0.05, 1.0, n),
        "LX": lx * u.erg / u.s, "LX_err": 0.1 * lx * u.erg / u.s,
        "count_rate": rate * u.ct / u.s, "count_rate_err": 0.1 * rate * u.ct / u.s,
        "DET_LIKE": rng.uniform(5, 100, n), "EXT_LIKE": rng.uniform(6, 50, n),
    })
    table.write(path, overwrite=True)


def profile(catalog, out, estimators):
    """The peak resident memory [MiB] of this process after each step of ``estimate``.

    ``ru_maxrss`` only grows: a step whose figure is above the one before it reached
    that peak (exactly, not sampled); one whose figure is the same stayed below it.
    """
    from astro_clustermass import api
    from astro_clustermass.esass import read_catalog, write_table

    peaks = []

    def during(name, function):
        def wrapped(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            finally:
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
                peaks.append((name, round(rss, 1)))
        return wrapped

    table = during("read", read_catalog)(catalog)
    run_one, write_columns = api._run_one, api.write_mass_columns
    api._run_one = during("an estimator", run_one)
    api.write_mass_columns = during("its mass columns", write_columns)
    try:
        result = during("add_mass_columns", api.add_mass_columns)(table,
                                                                  estimators=estimators)
    finally:
        api._run_one, api.write_mass_columns = run_one, write_columns
    during("write", write_table)(result, out, overwrite=True)
    return peaks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dir", default="/tmp/acm_mem")
    parser.add_argument("-e", "--estimator", action="append", dest="estimators")
    parser.add_argument("--json", default=None)
    parser.add_argument("--profile", action="store_true",
                        help="peak memory of each step, in this process")
    args = parser.parse_args(argv)
    estimators = args.estimators or ["lx-chiu22", "cr-erass1"]
    os.makedirs(args.dir, exist_ok=True)
    catalog = os.path.join(args.dir, f"catalog_{args.n}.fits")
    if not os.path.exists(catalog):
        make_catalog(catalog, args.n)
    out = os.path.join(args.dir, "out.fits")
    if args.profile:
        result = profile(catalog, out, estimators)
        print(json.dumps(result, indent=1))
        return result
    command = [sys.executable, "-m", "astro_clustermass.cli", "estimate", catalog, "-o", out,
               "--overwrite"] + [a for e in estimators for a in ("-e", e)]
    start = time.monotonic()
    subprocess.run(command, check=True)
    wall = time.monotonic() - start
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "rows": args.n, "estimators": estimators, "wall_s": round(wall, 1),
        "peak_rss_mib": round(peak_mib, 1),
        "catalog_mib": round(os.path.getsize(catalog) / 2**20, 1),
        "output_mib": round(os.path.getsize(out) / 2**20, 1),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return result


if __name__ == "__main__":
    main()
