"""``astro-clustermass demo``: every installed estimator on a built-in mock eFEDS sky."""

from __future__ import annotations

import numpy as np
from astropy import units as u

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    """Arguments of ``astro-clustermass demo``."""
    parser.add_argument("--catalog-only", action="store_true",
                        help="skip the simulated sky: a catalogue drawn from the relations")
    parser.add_argument("-n", type=int, default=None,
                        help="halos to simulate (default 200), or clusters of the "
                             "catalogue-only demo (default 20)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("-o", "--output", default="clustermass_demo.fits",
                        help="output table (default clustermass_demo.fits; replaced if present)")
    parser.add_argument("--workdir", default=None,
                        help="keep the simulated event files here (default: a temporary "
                             "directory, removed afterwards)")


def run(args):
    """Run ``astro-clustermass demo``; returns the exit status."""
    import tempfile

    from ..utils.optional import require

    for module in ("colossus", "torch", "safetensors"):  # the simulator and the CNN
        require(module, extra="all", feature="astro-clustermass demo")
    from ..api import add_mass_columns, list_estimators
    from ..core import ONE_SIGMA_QUANTILE
    from ..demo import SELECTION, demo_catalog, demo_sky
    from ..esass import write_table

    print("Installed estimators:")
    list_estimators()["name", "package", "version", "inputs", "status"].pprint_all()
    tmp = None
    if args.catalog_only:
        table = demo_catalog(args.n or 20, args.seed)
        out = add_mass_columns(table)
        what = "demo clusters (observables drawn from the relations)"
    else:
        workdir = args.workdir
        if workdir is None:
            tmp = tempfile.TemporaryDirectory(prefix="acm-demo-")
            workdir = tmp.name
        n_halos = args.n or 200
        print(f"\nSimulating a mock eFEDS sky: {n_halos} halos from the mass function, "
              f"events, detection (seed {args.seed}) ...")
        table, event_files = demo_sky(workdir, n_halos=n_halos, seed=args.seed)
        if len(table) == 0:
            print(f"no simulated cluster passes {SELECTION}; try a larger -n")
            return 1
        out = add_mass_columns(table, events=event_files)
        what = f"simulated clusters passing {SELECTION}"
    try:
        names = list(out.meta.get("astro_clustermass", {}))
        print(f"\n{len(out)} {what}; estimators run: {', '.join(names) or 'none'}\n")
        show = ["name", "z", "M500c"] + [f"M500c_{n}" for n in names]
        view = out[show].copy()
        for col in show[2:]:
            view[col] = view[col].to_value(u.Msun) / 1e14
            view[col].info.format = ".2f"
        view["z"].info.format = ".3f"
        view.rename_columns(show[2:], [f"{c} [1e14 Msun]" for c in show[2:]])
        view.pprint_all()
        print("\nlog10(M_est / M_true), and the fraction of true masses inside the 68% "
              "intervals:")
        true = np.log10(out["M500c"].to_value(u.Msun))
        for name in names:
            col = out[f"log10M500c_{name}"]
            ok = ~np.ma.getmaskarray(col)
            est = np.asarray(getattr(col, "unmasked", col).value)
            err = np.asarray(getattr(out[f"log10M500c_{name}_err"], "unmasked",
                                     out[f"log10M500c_{name}_err"]).value)
            if ok.any():
                resid = est[ok] - true[ok]
                inside = np.abs(resid) <= ONE_SIGMA_QUANTILE * err[ok]  # 16-84% interval
                print(f"  {name:>14}: {ok.sum():3d} clusters, mean {resid.mean():+.3f} dex, "
                      f"scatter {resid.std():.3f} dex, mean sigma {err[ok].mean():.3f} dex, "
                      f"cov68 {inside.mean():.2f}")
            else:
                print(f"  {name:>14}: no estimates ({out[f'M500c_{name}_flag'][0]})")
        path = write_table(out, args.output, overwrite=True)
        print(f"\nwrote {path}")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0
