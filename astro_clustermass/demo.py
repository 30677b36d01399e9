"""The built-in demo: known clusters, every installed estimator, masses beside the truth.

``astro-clustermass demo`` runs the whole chain on an embedded default, with no input
and no download:

1. the package simulator (`astro_clustermass.simulate`, stamps mode) draws halos from
   the mass function, paints their photons, AGN and background through the eFEDS
   response into eSASS-like event files, and detects sources with its
   maximum-likelihood fit;
2. the detected clusters passing the eFEDS selection (EXT_LIKE > 6, DET_LIKE > 5) form
   the catalogue: measured ``ML_RATE``, the simulation's redshift and L_X (with a 10%
   measurement error, as the seeds compare with true luminosities);
3. every installed estimator that can run on it adds its columns: the scaling
   relations from the catalogue, the CNN ensemble from energy-band images that
   `astro_clustermass.ebi` cuts from the event files;
4. the masses are printed beside the true ones and written to a FITS file.

``--catalog-only`` skips the simulation and uses `demo_catalog`, whose observables
are drawn from the very relations the scaling-relation estimators invert (it shows
the machinery, not a validation: see :ref:`validation`).
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.cosmology import FlatLambdaCDM
from astropy.table import QTable

__all__ = ["demo_catalog", "demo_sky", "add_arguments", "run"]

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


#: The eFEDS cluster selection of seed 000.
SELECTION = "EXT_LIKE > 6 & DET_LIKE > 5"


def demo_sky(outdir, n_halos=200, seed=42, progress=True):
    """Simulate a small mock eFEDS sky and return its detected-cluster catalogue.

    Parameters
    ----------
    outdir : str
        Directory for the simulator output (event files, truth, detections); an
        existing run with the same parameters is reused.
    n_halos : int
        Stamps (central halos drawn from the mass function) to simulate; about one in
        four passes the selection (50 of the default 200, seed 42).
    seed : int
        Random seed of the simulation.
    progress : bool
        Progress bar.

    Returns
    -------
    catalog : `~astropy.table.QTable`
        Detections of a simulated cluster passing ``EXT_LIKE > 6 & DET_LIKE > 5``:
        ``RA``, ``DEC``, ``DET_LIKE``, ``EXT_LIKE``, ``count_rate`` and
        ``count_rate_err`` (measured ``ML_RATE``), ``z``, ``LX`` and ``LX_err`` (the
        halo's 0.5-2 keV luminosity with a 10% Gaussian measurement error) and the
        true ``M500c``.
    event_files : list of str
        The realisation's event files.
    """
    from .simulate import simulate_stamps

    real = simulate_stamps(outdir, n_halos=n_halos, seed=seed, progress=progress)
    det = real.detections
    matched = np.asarray(det["MATCHED"], dtype=bool)
    central = np.asarray(np.ma.filled(np.ma.asarray(det["central"]), False), dtype=bool)
    keep = (matched & central & (np.asarray(det["EXT_LIKE"]) > 6)
            & (np.asarray(det["DET_LIKE"]) > 5))
    sel = det[keep]
    rng = np.random.default_rng([seed, 1])
    lx = u.Quantity(sel["LX"]).to(u.erg / u.s)
    table = QTable({
        "name": [f"SIM-{i:03d}" for i in range(len(sel))],
        "RA": u.Quantity(sel["RA"], u.deg), "DEC": u.Quantity(sel["DEC"], u.deg),
        "DET_LIKE": np.asarray(sel["DET_LIKE"], float),
        "EXT_LIKE": np.asarray(sel["EXT_LIKE"], float),
        "count_rate": u.Quantity(sel["ML_RATE"]).to(u.ct / u.s),
        "count_rate_err": u.Quantity(sel["ML_RATE_ERR"]).to(u.ct / u.s),
        "z": np.asarray(sel["z"], float),
        "LX": lx * (1 + 0.1 * rng.standard_normal(len(sel))), "LX_err": 0.1 * lx,
        "M500c": u.Quantity(sel["M500c"]).to(u.Msun),
    })
    table.meta["ORIGIN"] = "astro_clustermass demo: simulated sky (stamps mode)"
    table.meta["SELECT"] = SELECTION
    table.meta["SEED"] = seed
    return table, list(real.event_files)


def add_arguments(parser):
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
    import tempfile

    from .api import add_mass_columns, list_estimators
    from .core import ONE_SIGMA_QUANTILE
    from .esass import write_table

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
