"""The built-in demo: a small catalogue with known masses, every installed estimator.

``astro-clustermass demo`` draws clusters with known M500c and z, gives them
observables (L_X, count rate, temperature) from published relations with intrinsic
scatter and measurement errors, runs every installed estimator whose inputs are
present, prints the masses beside the truth, and writes the table to a file.

The observables are drawn from the same relations the scaling-relation estimators
invert, so the demo shows the machinery, not a validation: see :ref:`validation`.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.cosmology import FlatLambdaCDM
from astropy.table import QTable

__all__ = ["demo_catalog", "add_arguments", "run"]

#: Exposure used for the count-rate errors (s): eFEDS depth after vignetting.
EXPOSURE = 1200.0 * u.s


def demo_catalog(n=20, seed=42):
    """A catalogue of ``n`` clusters with known masses and observables.

    Columns: ``M500c`` (true, Msun), ``z``, ``LX`` and ``LX_err`` (erg/s, Chiu et al.
    2022 L_X-M-z relation with its intrinsic scatter and a 10 per cent measurement
    error), ``count_rate`` and ``count_rate_err`` (ct/s, eRASS1 CR-M-z relation with
    scatter and Poisson noise for a 1.2 ks exposure), ``T`` and ``T_err`` (keV,
    Arnaud et al. 2007 M-T relation with 0.04 dex scatter and 10 per cent errors).

    Parameters
    ----------
    n : int
        Number of clusters.
    seed : int
        Random seed; the same seed gives the same catalogue.
    """
    from .relations.base import load_relation

    rng = np.random.default_rng(seed)
    log_m = rng.uniform(13.7, 15.0, n)
    z = np.round(rng.uniform(0.05, 0.9, n), 3)
    mass = 10 ** log_m * u.Msun
    lx = load_relation("lx-chiu22").sample_observable(mass, z, rng=rng)
    lx_err = 0.1 * lx
    lx_obs = lx + lx_err * rng.standard_normal(n)
    rate = load_relation("cr-erass1").sample_observable(mass, z, rng=rng).to(u.ct / u.s)
    counts = rng.poisson((rate * EXPOSURE).to_value(u.ct))
    rate_obs = np.maximum(counts, 1) / EXPOSURE * u.ct
    rate_err = np.sqrt(np.maximum(counts, 1)) / EXPOSURE * u.ct
    # Arnaud et al. (2007): E(z) M500 = 10^14.580 (T / 5 keV)^1.71 Msun (H0 = 70).
    ez = FlatLambdaCDM(H0=70, Om0=0.3).efunc(z)
    t_kev = 5.0 * (10 ** (log_m + np.log10(ez) - 14.580)) ** (1 / 1.71)
    t_kev = t_kev * 10 ** (0.04 * rng.standard_normal(n))
    t_obs = t_kev * (1 + 0.1 * rng.standard_normal(n))
    table = QTable({
        "name": [f"DEMO-{i:03d}" for i in range(n)],
        "M500c": mass,
        "z": z,
        "LX": lx_obs, "LX_err": lx_err,
        "count_rate": rate_obs, "count_rate_err": rate_err,
        "T": t_obs * u.keV, "T_err": 0.1 * t_kev * u.keV,
    })
    table.meta["ORIGIN"] = "astro_clustermass demo catalogue"
    table.meta["COMMENT"] = ["known masses; observables drawn from published relations"]
    table.meta["SEED"] = seed
    return table


def add_arguments(parser):
    parser.add_argument("-n", type=int, default=20, help="number of clusters (default 20)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("-o", "--output", default="clustermass_demo.fits",
                        help="output table (default clustermass_demo.fits; replaced if present)")


def run(args):
    from .api import add_mass_columns, list_estimators
    from .esass import write_table

    print("Installed estimators:")
    list_estimators()["name", "package", "version", "inputs", "status"].pprint_all()
    table = demo_catalog(args.n, args.seed)
    out = add_mass_columns(table)
    names = list(out.meta.get("astro_clustermass", {}))
    print(f"\n{len(out)} demo clusters; estimators run: {', '.join(names) or 'none'}\n")
    show = ["name", "z", "M500c"] + [f"M500c_{n}" for n in names]
    view = out[show].copy()
    for col in show[2:]:
        view[col] = view[col].to_value(u.Msun) / 1e14
        view[col].info.format = ".2f"
    view.rename_columns(show[2:], [f"{c} [1e14 Msun]" for c in show[2:]])
    view.pprint_all()
    print("\nlog10(M_est / M_true) over the demo clusters:")
    true = np.log10(out["M500c"].to_value(u.Msun))
    for name in names:
        col = out[f"log10M500c_{name}"]
        ok = ~np.ma.getmaskarray(col)
        resid = np.asarray(col.unmasked.value if hasattr(col, "unmasked") else col)[ok] - true[ok]
        err = np.asarray(getattr(out[f"log10M500c_{name}_err"], "unmasked",
                                 out[f"log10M500c_{name}_err"]).value)[ok]
        if ok.any():
            print(f"  {name:>14}: {ok.sum():3d} clusters, mean {resid.mean():+.3f} dex, "
                  f"scatter {resid.std():.3f} dex, mean sigma {err.mean():.3f} dex")
        else:
            print(f"  {name:>14}: no estimates ({out[f'M500c_{name}_flag'][0]})")
    path = write_table(out, args.output, overwrite=True)
    print(f"\nwrote {path}")
    return 0
