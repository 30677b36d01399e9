#!/usr/bin/env python
"""Time one eFEDS-size simulated field (all halos > 1e13 Msun, events, detection).

Usage::

    python benchmarks/bench_simulate.py --area 140 --seed 1 -o /work/sim_output/bench140

Writes the realisation to ``-o`` (outside the git tree) and a JSON summary (timings per
stage, machine, load) to ``--json`` (default ``bench_simulate.json`` in ``-o``); the
summary is also printed. ``--workers N`` shares the detection tiles among N processes
(same results). Use a smaller ``--area`` on a busy machine: the cost scales about
linearly with the area (the summary says which was run).
"""

import argparse
import json
import os
import platform
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--area", type=float, default=140.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=1, help="processes for the detection")
    p.add_argument("-o", "--outdir", default="/work/sim_output/bench140")
    p.add_argument("--json", default=None,
                   help="summary file (default: bench_simulate.json in the output directory)")
    a = p.parse_args()
    from astro_clustermass.simulate import simulate_field

    load0 = os.getloadavg()
    t0 = time.perf_counter()
    kw = {"workers": a.workers} if a.workers != 1 else {}
    r = simulate_field(a.outdir, area=a.area, seed=a.seed, overwrite=True, progress=True, **kw)
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    out = {"area_deg2": a.area, "seed": a.seed, "workers": a.workers, "wall_s": round(wall, 1),
           "stages_s": r.manifest["timing_s"], "counts": r.manifest["counts"],
           "machine": {"nproc": os.cpu_count(), "processor": platform.processor() or
                       platform.machine(), "python": platform.python_version()},
           "load_before": [round(x, 2) for x in load0], "load_after": [round(x, 2) for x in load1],
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "command": f"python benchmarks/bench_simulate.py --area {a.area:g} --seed {a.seed}"
                      + (f" --workers {a.workers}" if a.workers != 1 else "")}
    a.json = a.json or os.path.join(a.outdir, "bench_simulate.json")
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as fh:
        json.dump(out, fh, indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
