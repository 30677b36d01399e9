"""Cost of the detection's third neighbour pass, as a ratio measured in one run.

    python benchmarks/bench_third_pass.py [--area 16] [--seed 12] [--repeats 2]

Generates one field sky, then runs the field detection on the same photons with
``det_ext_refit_radius`` = 0 (two passes) and 120" (the default), alternating, and prints
the wall times (after an untimed warm-up run), the ratio of the fastest of each and the
selected sources of each (figures in docs/performance.rst).
"""

import argparse
import dataclasses
import json
import os
import time


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--area", type=float, default=16.0)
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)

    import numpy as np

    from astro_clustermass.simulate import DEFAULT_CONFIG
    from astro_clustermass.simulate.field import detect_field, generate_field_sky

    sky = generate_field_sky(args.area, args.seed, DEFAULT_CONFIG)
    configs = {r: dataclasses.replace(DEFAULT_CONFIG, det_ext_refit_radius=r)
               for r in (0.0, DEFAULT_CONFIG.det_ext_refit_radius)}
    times = {r: [] for r in configs}
    detect_field(sky, DEFAULT_CONFIG, progress=False)    # warm-up (cached tables), untimed
    selected = {}
    for _ in range(args.repeats):
        for r, cfg in configs.items():
            t0 = time.perf_counter()
            det = detect_field(sky, cfg, progress=False)
            times[r].append(time.perf_counter() - t0)
            sel = (np.asarray(det["EXT_LIKE"]) > 6) & (np.asarray(det["DET_LIKE"]) > 5)
            selected[r] = int(sel.sum())
    r0, r1 = configs
    out = {"area_deg2": args.area, "seed": args.seed, "repeats": args.repeats,
           "seconds": {f"{r:g}": v for r, v in times.items()},
           "ratio_third_pass_over_two": min(times[r1]) / min(times[r0]),
           "selected": {f"{r:g}": n for r, n in selected.items()},
           "load": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
