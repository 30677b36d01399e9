"""``astro-clustermass simulate``: mock eFEDS-like skies (field or stamps mode)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--outdir", required=True,
                        help="output directory (field mode: one sub-directory real_NNN per "
                             "realisation; stamps mode: chunk files)")
    parser.add_argument("--mode", choices=("field", "stamps"), default="field",
                        help="field: contiguous field(s); stamps: stamps around halos of a "
                             "virtual area (training sets)")
    parser.add_argument("--area", type=float, default=None,
                        help="field area or stamps virtual area [deg^2] (field default 140)")
    parser.add_argument("--n-halos", type=int, default=None,
                        help="stamps mode: number of stamps wanted (instead of --area)")
    parser.add_argument("--realisations", type=int, default=1,
                        help="field mode: number of realisations (seeds SEED, SEED+1, ...)")
    parser.add_argument("--seed", type=int, default=0, help="root seed (default 0)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes (stamps; field mode: for the detection)")
    parser.add_argument("--keep-events", choices=("selected", "all", "none"),
                        default="selected", help="stamps mode: which stamps keep their photons")
    parser.add_argument("--resume", action="store_true",
                        help="keep finished realisations / chunks (default: also on; "
                             "--no-resume redoes them)")
    parser.add_argument("--no-resume", dest="resume", action="store_false")
    parser.set_defaults(resume=True)
    parser.add_argument("--set", action="append", metavar="NAME=VALUE", default=[],
                        help="override a SimConfig parameter (repeatable), e.g. "
                             "--set lx_scatter_dex=0.25")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _config(items):
    import dataclasses

    from ..simulate.config import SimConfig

    fields = {f.name: f for f in dataclasses.fields(SimConfig)}
    kw = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in fields:
            raise SystemExit(f"--set expects NAME=VALUE with NAME a SimConfig field, got {item!r}")
        default = fields[name].default
        try:
            if isinstance(default, bool):
                kw[name] = value.lower() in ("1", "true", "yes")
            elif isinstance(default, tuple):
                kw[name] = tuple(type(default[0])(v) for v in value.split(","))
            else:
                kw[name] = type(default)(value)
        except ValueError:
            raise SystemExit(f"--set {name}: cannot read {value!r} as {type(default).__name__}")
    return SimConfig(**kw)


def run(args: argparse.Namespace) -> int:
    import os

    from ..utils.optional import require

    require("colossus", feature="the simulator")
    from ..simulate import simulate_field, simulate_stamps

    config = _config(args.set)
    progress = not args.no_progress
    if args.mode == "field":
        area = 140.0 if args.area is None else args.area
        for k in range(args.realisations):
            d = os.path.join(args.outdir, f"real_{k:03d}") if args.realisations > 1 else args.outdir
            r = simulate_field(d, area=area, seed=args.seed + k, config=config,
                               progress=progress, overwrite=not args.resume,
                               workers=args.workers)
            c = r.manifest.get("counts", {})
            print(f"{d}: {c.get('halos')} halos, {c.get('events')} events, "
                  f"{c.get('detections')} detections, {c.get('selected')} pass "
                  "EXT_LIKE>6 & DET_LIKE>5")
    else:
        if (args.area is None) == (args.n_halos is None):
            raise SystemExit("stamps mode needs exactly one of --area and --n-halos")
        r = simulate_stamps(args.outdir, n_halos=args.n_halos, area=args.area, seed=args.seed,
                            config=config, progress=progress, resume=args.resume,
                            workers=args.workers, keep_events=args.keep_events)
        m = r.manifest
        print(f"{args.outdir}: {m['n_stamps']} stamps over {m['area_deg2']:.1f} deg^2 "
              f"({m['status']}), {m.get('selected')} selected clusters")
    return 0
