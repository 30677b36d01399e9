#!/usr/bin/env python
"""Every estimator on the same held-out simulated clusters: the comparison of seed 000
sect. 4 (Figs. 4-8) as one command.

Given a data set in the CNN's HDF5 layout (`astro_clustermass.cnn.dataset`), this

1. reproduces the CNN ensemble's held-out test split (selection, split seed and
   fractions from the ensemble manifest; the split sizes are checked against it), or
   uses the same defaults (``EXT_LIKE > 6 & DET_LIKE > 5``, seed 0, 70/15/15) when no
   ensemble is available;
2. runs ``lx-chiu22`` on the catalogue's L_X (in the simulations the true luminosities,
   as in seed 000), ``cr-erass1`` on the measured ``ML_RATE`` +- ``ML_RATE_ERR``, and
   ``cnn-ensemble`` on the images (skipped, with a message, if no ensemble exists);
3. evaluates them with `astro_clustermass.evaluation.evaluate` (all rows and the two
   selection cuts; mass and redshift bins);
4. for the CNN: ensemble-member disagreement (seed 000 Fig. 7), gradient maps in mass
   bins (seed 004 sect. 4) and the core-masking test;
5. writes the HTML report, the metrics table (ECSV) and the comparison as an RST table
   to ``--out`` (default outside the repository), optionally a few PNGs to
   ``--static`` (e.g. docs/_static), and prints the comparison table.

Example::

    python benchmarks/compare_estimators.py /work/cnn_work_sim/dataset.h5 --out /tmp/compare
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _r500_pix(catalog, pix_arcsec):
    """R500c of every cluster in EBI pixels, or None.

    From the catalogue's ``R500_arcsec`` when present (interim data sets), else from the true
    ``M500c`` and ``z`` with the simulator's (seed-000) cosmology, as the package simulator's
    truth tables compute it.
    """
    if "R500_arcsec" in catalog.colnames:
        return np.asarray(catalog["R500_arcsec"], float) / pix_arcsec
    if not {"M500c", "z"} <= set(catalog.colnames):
        return None
    from astropy import units as u

    from astro_clustermass.simulate.config import SimConfig
    from astro_clustermass.simulate.halos import r500c_kpc

    config = SimConfig()
    m = np.asarray(u.Quantity(catalog["M500c"], u.Msun).value, float)
    z = np.asarray(catalog["z"], float)
    r500_kpc = r500c_kpc(m, z, config)
    da_kpc = config.cosmology.angular_diameter_distance(z).to_value(u.kpc)
    return r500_kpc / da_kpc * (180.0 / np.pi * 3600.0) / pix_arcsec


def _split(data, selection, seed, fractions):
    """The test split of `astro_clustermass.cnn.dataset.prepare_splits` (no torch)."""
    from astro_clustermass.cnn.dataset import prepare_splits

    splits, info = prepare_splits(data, selection, seed, fractions)
    return splits["test"], {k: info[k] for k in ("n_selected", "n_train", "n_val", "n_test")}


def _png(fig, path):
    from astro_clustermass.evaluation.plots import figure_to_png

    with open(path, "wb") as fh:
        fh.write(figure_to_png(fig, dpi=80))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", help="HDF5 data set (astro_clustermass.cnn.dataset layout)")
    p.add_argument("--weights", default=None,
                   help="CNN ensemble directory (default: the shipped one, if present)")
    p.add_argument("--no-cnn", action="store_true", help="scaling relations only")
    p.add_argument("--split", choices=("test", "all"), default="test",
                   help="evaluate on the held-out test split (default) or on every row")
    p.add_argument("--out", default=os.path.join("/tmp", "astro_clustermass_compare"),
                   help="output directory (keep it outside git)")
    p.add_argument("--static", default=None,
                   help="also write the few PNGs the docs show to this directory")
    p.add_argument("--max-clusters", type=int, default=None,
                   help="evaluate a random subset of at most this many test clusters")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--core-radius", type=float, default=None,
                   help="core-masking radius [EBI pixels] (default: interpret's default)")
    p.add_argument("--gradient-max-per-bin", type=int, default=200,
                   help="clusters per mass bin for the gradient maps")
    p.add_argument("--dream-step", type=float, default=0.25,
                   help="DeepDream iterations: largest change of a pixel per step [counts]")
    p.add_argument("--no-interpret", action="store_true",
                   help="skip member disagreement, gradient maps and core masking")
    args = p.parse_args(argv)

    from astropy import units as u
    from astropy.table import Table

    from astro_clustermass.api import add_mass_columns
    from astro_clustermass.cnn import interpret
    from astro_clustermass.cnn.dataset import DEFAULT_SELECTION, read_dataset
    from astro_clustermass.cnn.io import default_weights_dir, read_manifest
    from astro_clustermass.evaluation.report import (
        Section,
        format_binned,
        format_summary,
        write_report,
    )

    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    weights = args.weights or default_weights_dir()
    manifest = None
    if not args.no_cnn:
        try:
            manifest = read_manifest(weights)
        except Exception as exc:
            log(f"no CNN ensemble ({exc}); comparing the scaling relations only")
    data = read_dataset(args.dataset)
    log(f"read {len(data)} clusters from {args.dataset}")
    if args.split == "test":
        ds = (manifest or {}).get("dataset", {})
        selection = ds.get("selection", DEFAULT_SELECTION)
        seed = int(ds.get("split_seed", 0))
        fractions = tuple(ds.get("split_fractions", (0.70, 0.15, 0.15)))
        test, info = _split(data, selection, seed, fractions)
        if manifest is not None:
            for key in ("n_train", "n_val", "n_test"):
                if key in ds and int(ds[key]) != info[key]:
                    raise SystemExit(f"{args.dataset} does not reproduce the ensemble's split "
                                     f"({key}: {info[key]} vs manifest {ds[key]}): wrong data "
                                     "set for these weights?")
        log(f"test split: {info['n_test']} of {info['n_selected']} selected clusters "
            f"(selection {selection!r}, seed {seed}, fractions {fractions})")
    else:
        test = data
    if args.max_clusters and len(test) > args.max_clusters:
        idx = np.sort(np.random.default_rng(0).choice(len(test), args.max_clusters,
                                                      replace=False))
        test = test.subset(idx)
        log(f"random subset of {len(test)} clusters")

    cat = Table(test.catalog, copy=True)
    if "M500c" in cat.colnames and getattr(cat["M500c"], "unit", None) is None:
        cat["M500c"].unit = u.Msun
    estimators = ["lx-chiu22", "cr-erass1"]
    out = add_mass_columns(cat, estimators=estimators, on_error="raise")
    log("scaling relations done")
    sections = []
    ens = None
    if manifest is not None:
        import torch

        from astro_clustermass.cnn.estimator import CNNEnsembleEstimator
        from astro_clustermass.core import write_mass_columns

        torch.set_num_threads(args.threads)
        est = CNNEnsembleEstimator(weights=weights, images=test.ebi,
                                   ebi_parameters=test.ebi_parameters, threads=args.threads)
        out = write_mass_columns(out, est.estimate(out), copy=False)
        ens = est.ensemble
        log(f"CNN ensemble ({len(ens)} members) done")
    title = "Comparison of mass estimators on held-out simulated clusters"
    extra = []
    z = np.asarray(test.z, float)
    lt = test.log10_mass
    if ens is not None and not args.no_interpret:
        edges = None
        params = test.ebi_parameters or {}
        if params.get("emin_keV") is not None:
            edges = np.linspace(params["emin_keV"], params["emax_keV"], params["nbands"] + 1)
        pix = (params.get("npix", 300) * params.get("pixel_arcsec", 4.0)
               / params.get("rebin", 50))
        dis = interpret.member_disagreement(ens, test.ebi, z)
        fig7 = interpret.disagreement_figure(test.ebi, dis, lt, z, k=1, band_edges_keV=edges,
                                             pixel_arcsec=pix)
        ratio = (dis.meta["sigma_ratio_mean"], dis.meta["sigma_ratio_std"])
        rng_ = dis["member_range"].value
        sections.append(Section(
            "Ensemble diagnostics (seed 000 Fig. 7)",
            f"{dis.meta['n_members']} members. Range of the member means (Delta mu = mu_max - "
            f"mu_min): median {np.median(rng_):.3f} dex, 90th percentile "
            f"{np.percentile(rng_, 90):.3f} dex, maximum {np.max(rng_):.3f} dex. Member sigma "
            f"over ensemble sigma: {ratio[0]:.3f} +- {ratio[1]:.3f} (seed 000: 0.951 +- "
            "0.039).", [("Ten band images of the clusters with the largest (top) and "
                         "smallest (bottom) member disagreement.", fig7)]))
        extra.append(("fig7_disagreement.png", fig7))
        r500 = _r500_pix(test.catalog, pix)
        grad = interpret.gradient_maps(ens, test.ebi, z, lt, max_per_bin=args.gradient_max_per_bin,
                                       r500_pix=r500, progress=True)
        from astro_clustermass.evaluation.plots import plot_gradient_maps

        keep = [i for i, n in enumerate(grad["n"]) if n > 0]
        gsub = {k: (np.asarray(v)[keep] if k in ("mean_gradient", "mean_abs_gradient",
                                                  "mean_grad_x_input", "band_fraction",
                                                  "radial_profile", "radial_profile_x_input",
                                                  "radial_n") else v)
                for k, v in grad.items()}
        gsub["bins"] = [grad["bins"][i] for i in keep]
        gsub["n"] = [grad["n"][i] for i in keep]
        gfig = plot_gradient_maps(gsub, pixel_arcsec=pix, band_edges_keV=edges)
        text = ("Gradient of the ensemble's mean log10 M500c with respect to the counts of "
                "every pixel and band (autograd through the input normalisation and every "
                f"member), averaged over up to {args.gradient_max_per_bin} clusters per bin of "
                "true mass.")
        if r500 is not None:
            redges = gsub["radial_edges"]
            for key, what in (("radial_profile", "gradient per pixel [dex per count]"),
                              ("radial_profile_x_input", "gradient x input per pixel [dex]")):
                prof = gsub[key]
                rows = []
                for b, (lo, hi) in enumerate(gsub["bins"]):
                    rows.append(f"{lo:.1f}-{hi:.1f}: " + ", ".join(
                        f"[{redges[j]:.2f},{redges[j + 1]:.2f}) {prof[b, j]:+.2e} "
                        f"(N={gsub['radial_n'][b, j]})" for j in range(len(redges) - 1)))
                text += (f"\n\nMean band-summed {what} in annuli of R/R500c, per bin of "
                         "true mass: " + " | ".join(rows))
            np.savez(os.path.join(args.out, "gradient_maps.npz"),
                     **{k: np.asarray(v) for k, v in grad.items()})
        figs = [("Gradient maps per bin of true mass.", gfig)]
        extra.append(("gradient_maps.png", gfig))
        if r500 is not None:
            from astro_clustermass.evaluation.plots import plot_deepdream_profiles

            pick = np.sort(np.random.default_rng(1).choice(
                len(z), min(len(z), args.gradient_max_per_bin), replace=False))
            dd = interpret.deepdream(ens, np.asarray(test.ebi[pick]), z[pick], r500[pick],
                                     max_change=args.dream_step)
            dfig = plot_deepdream_profiles(dd)
            figs.append(("DeepDream-style iterations: fractional change of the counts per "
                         "annulus of R/R500c (seed 004 Fig. 6).", dfig))
            extra.append(("deepdream.png", dfig))
            re_ = dd["radial_edges"]
            with np.errstate(invalid="ignore"):
                med = np.nanmedian(dd["delta_over_n"], axis=1)
            text += ("\n\nDeepDream-style iterations (seed 004; largest change "
                     f"{args.dream_step:g} counts per pixel per iteration, {len(pick)} random "
                     "test clusters): mean predicted "
                     "mass raised by " + ", ".join(
                         f"{np.mean(dd['log10_mass'][k + 1] - dd['log10_mass'][0]):+.3f}"
                         for k in range(med.shape[0])) + " dex; median Delta N / N per "
                     "annulus of R/R500c: " + " | ".join(
                         f"iteration {k + 1}: " + ", ".join(
                             f"[{re_[j]:.2f},{re_[j + 1]:.2f}) {med[k, j]:+.3f}"
                             for j in range(len(re_) - 1)) for k in range(med.shape[0])))
        sections.append(Section("Where the network looks (seed 004 sect. 4)", text, figs))
        from astropy.table import vstack

        tests = [(f"{args.core_radius or interpret.DEFAULT_CORE_RADIUS_PIX:g} px",
                  {"radius_pix": args.core_radius or interpret.DEFAULT_CORE_RADIUS_PIX})]
        if r500 is not None:
            rad = np.clip(0.2 * r500, 0.5, 7.0)
            tests.append(("0.2 R500c", {"radius_pix": rad,
                                        "control_offset_pix": np.maximum(6.0, 2 * rad + 1)}))
        summaries, texts = [], []
        for label, kw in tests:
            cm, _ = interpret.core_masking_test(ens, test.ebi, z, lt, catalog=test.catalog, **kw)
            info = cm.meta["core_masking"]
            summ = cm[np.asarray(cm["binning"]) == "all"]
            summ = summ["estimator", "selection", "n", "bias", "scatter", "scatter_nmad",
                        "mean_sigma", "coverage68"]
            summ.add_column([label] * len(summ), name="core", index=0)
            summ.meta = {}
            summaries.append(summ)
            texts.append(
                f"Core = {label}: median radius {info['radius_pix_median']:.2f} EBI pixels "
                f"({info['radius_pix_median'] * pix:.0f} arcsec), {info['pixels_masked_mean']:.1f} "
                f"pixels per band on average, replaced by the {info['fill']} level; control: "
                f"the same disc at a median {info['control_offset_pix']:.1f} pixels from the "
                f"centre. Mean shift of the prediction: core "
                f"{info['core_masked_shift_mean_dex']:+.3f} +- "
                f"{info['core_masked_shift_std_dex']:.3f} dex, control "
                f"{info['control_masked_shift_mean_dex']:+.3f} +- "
                f"{info['control_masked_shift_std_dex']:.3f} dex.")
            print(f"core masking, core = {label}:")
            print(format_summary(cm))
            cm.write(os.path.join(args.out, f"core_masking_{label.replace(' ', '_')}.ecsv"),
                     overwrite=True)
        sections.append(Section("Does the network use the core? (seed 004)",
                                "\n\n".join(texts), [], vstack(summaries)))
        log("interpretation done")
    report = os.path.join(args.out, "comparison.html")
    table = write_report(report, out, sections=sections, title=title)
    table.write(os.path.join(args.out, "metrics.ecsv"), overwrite=True)
    rst = format_summary(table, fmt="rst")
    binned = format_binned(table, "EXT_LIKE>6 & DET_LIKE>5", "log10M", "bias")
    binned_hq = format_binned(table, "EXT_LIKE>60 & DET_LIKE>60", "log10M", "bias")
    with open(os.path.join(args.out, "comparison.rst"), "w") as fh:
        fh.write(rst + "\n\nbias per bin of true mass, EXT_LIKE>6 & DET_LIKE>5:\n\n" + binned
                 + "\n\nbias per bin of true mass, EXT_LIKE>60 & DET_LIKE>60:\n\n" + binned_hq
                 + "\n")
    if args.static:
        from astro_clustermass.evaluation.metrics import collect
        from astro_clustermass.evaluation.plots import (
            plot_binned_metrics,
            plot_calibration,
            plot_pred_vs_true,
        )

        os.makedirs(args.static, exist_ok=True)
        data_ = collect(out)
        sel = "EXT_LIKE>6 & DET_LIKE>5"
        _png(plot_pred_vs_true(data_, sel), os.path.join(args.static, "compare_pred_vs_true.png"))
        _png(plot_binned_metrics(table, sel), os.path.join(args.static, "compare_binned.png"))
        _png(plot_calibration(data_, sel), os.path.join(args.static, "compare_calibration.png"))
        for name, fig in extra:
            _png(fig, os.path.join(args.static, "compare_" + name))
    print(rst)
    print(binned)
    print(binned_hq)
    for note in table.meta["astro_clustermass_evaluation"]["notes"]:
        print("note:", note)
    print(f"report: {report}; {len(out)} clusters; {time.time() - t0:.0f} s on "
          f"{platform.node()} ({os.cpu_count()} cores), load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
