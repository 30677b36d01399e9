#!/usr/bin/env python
"""The scaling-relation estimators on the real eFEDS clusters, against the published masses.

    python benchmarks/validate_relations_real.py [--data tests/data/efeds] [--static DIR]

Joins the public eFEDS tables (Liu et al. 2022 luminosities, Klein et al. 2022 count
rates and redshifts, Chiu et al. 2022 weak-lensing-calibrated masses; by default the
trimmed copy in tests/data/efeds, whose provenance is in its README), runs
``lx-chiu22`` (500 kpc luminosities taken to R500c with the package simulator's median
beta model) and ``cr-erass1`` (ML_RATE, 0.2-2.3 keV) through add_mass_columns, and
prints, for the secure clusters (F_CONT_BEST_COMB < 0.2), overall and per redshift bin:
the median of log10 M_est - log10 M_published (h = 0.7), half its 16-84 % range, the
fraction of published masses inside the 68 % intervals, the mean sigma, the mean
published sigma, and the pull half-width with the published errors added in quadrature.

Then the same overall figures for other readings of the relations, none fitted: the
500 kpc luminosities without aperture correction, the lx-chiu22 normalisation read in
1e43 h^-2 erg/s, and cr-erass1 with A = 0.64 instead of ln A = 0.64.
``--static`` writes efeds_mass_comparison.png and efeds_residual_vs_z.png.
"""

import argparse
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from astro_clustermass.relations import efeds  # noqa: E402
from astro_clustermass.relations.base import load_relation  # noqa: E402

NAMES = ("lx-chiu22", "cr-erass1")


def print_rows(rows, title):
    print(f"\n{title}")
    print(f"{'estimator':<10} {'sample':<36} {'N':>4} {'median':>7} {'hw68':>6} {'cov68':>6} "
          f"{'<sigma>':>7} {'<s_pub>':>7} {'pull hw':>7}")
    for r in rows:
        if not r.get("n"):
            print(f"{r['estimator']:<10} {r['sample']:<36} {0:>4}")
            continue
        print(f"{r['estimator']:<10} {r['sample']:<36} {r['n']:>4} {r['median']:+7.3f} "
              f"{r['half_width']:6.3f} {r['coverage']:6.3f} {r['mean_sigma']:7.3f} "
              f"{r['mean_published_sigma']:7.3f} {r['pull_half_width']:7.3f}")


def alternatives(data):
    """Overall rows for the other readings (secure clusters, calibrated z range)."""
    lx = load_relation("lx-chiu22")
    cr = load_relation("cr-erass1")
    h = lx.meta["little_h"]
    cases = [
        ("lx-chiu22", "500 kpc L_X, no aperture correction", dict(aperture=False)),
        ("lx-chiu22", "normalisation 1e43 h^-2 erg/s",
         dict(lx_relation=lx.with_parameters(normalization=lx.normalization / h ** 2))),
        ("lx-chiu22", "1e43 h^-2 erg/s, no aperture corr.",
         dict(aperture=False,
              lx_relation=lx.with_parameters(normalization=lx.normalization / h ** 2))),
        ("cr-erass1", "A = 0.64 (not ln A)", dict(cr_relation=cr.with_parameters(A=0.64))),
    ]
    rows = []
    for name, label, options in cases:
        _, all_rows = efeds.validate(data, **options)
        row = [r for r in all_rows if r["estimator"] == name][1]  # calibrated z range
        rows.append({**row, "sample": label})
    return rows


def plot(table, static):
    from matplotlib.figure import Figure

    from astro_clustermass.evaluation.plots import figure_to_png

    secure = np.asarray(table["secure"], bool)
    z = np.asarray(table["Z_BEST_COMB"], float)
    pub = np.asarray(table["log10M500c_published"].value, float)
    pub_err = np.asarray(table["log10M500c_published_err"].value, float)
    fig1 = Figure(figsize=(10, 4.6))
    fig2 = Figure(figsize=(10, 4.2))
    for k, name in enumerate(NAMES):
        col = table[f"log10M500c_{name}"]
        ok = secure & ~np.ma.getmaskarray(col)
        mu = np.asarray(getattr(col, "unmasked", col).value, float)
        sig = np.asarray(getattr(table[f"log10M500c_{name}_err"], "unmasked",
                                 table[f"log10M500c_{name}_err"]).value, float)
        ax = fig1.add_subplot(1, 2, k + 1)
        ax.errorbar(pub[ok], mu[ok], xerr=pub_err[ok], yerr=sig[ok], fmt="o", ms=2.5,
                    elinewidth=0.4, alpha=0.6)
        lim = (12.8, 15.3)
        ax.plot(lim, lim, "k-", lw=0.8)
        ax.set(xlim=lim, ylim=lim, title=f"{name} ({ok.sum()} secure eFEDS clusters)",
               xlabel=r"published $\log_{10}(M_{500c}/M_\odot)$ (Chiu et al. 2022, h = 0.7)",
               ylabel=r"estimated $\log_{10}(M_{500c}/M_\odot)$")
        ax = fig2.add_subplot(1, 2, k + 1)
        d = mu - pub
        ax.plot(z[ok], d[ok], "o", ms=2.5, alpha=0.5)
        for lo, hi in efeds.Z_BINS:
            sel = ok & (z >= lo) & (z < hi)
            if sel.sum() >= 5:
                q = np.percentile(d[sel], [15.865, 50, 84.135])
                ax.errorbar(0.5 * (lo + hi), q[1], yerr=[[q[1] - q[0]], [q[2] - q[1]]],
                            xerr=0.5 * (hi - lo), fmt="s", color="k", ms=5, capsize=2)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set(ylim=(-0.8, 0.8), title=name, xlabel="redshift (Z_BEST_COMB)",
               ylabel=r"$\log_{10} M_{\rm est} - \log_{10} M_{\rm published}$ [dex]")
    fig1.tight_layout()
    fig2.tight_layout()
    for fig, fname in ((fig1, "efeds_mass_comparison.png"), (fig2, "efeds_residual_vs_z.png")):
        path = os.path.join(static, fname)
        with open(path, "wb") as fh:
            fh.write(figure_to_png(fig, dpi=80))
        print(f"wrote {path}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.path.join(REPO, "tests", "data", "efeds"),
                   help="folder with the three eFEDS tables (default: the trimmed copy)")
    p.add_argument("--static", default=None, help="write the two PNGs to this folder")
    p.add_argument("--core-radius", type=float, default=None,
                   help="r_c / R500c of the aperture correction's beta model (default: the "
                        "simulator's median core radius)")
    p.add_argument("--no-alternatives", action="store_true",
                   help="skip the other readings of the relations")
    p.add_argument("--write-test-data", metavar="DIR", default=None,
                   help="write the trimmed copy of the tables in --data to DIR and stop")
    args = p.parse_args(argv)
    if args.write_test_data:
        print(f"wrote {efeds.trim_tables(args.data, args.write_test_data)}")
        return 0
    t0 = time.time()
    table, rows = efeds.validate(args.data, core_radius=args.core_radius)
    corr = np.asarray(table["aperture_correction"], float)
    sec = np.asarray(table["secure"], bool) & np.isfinite(corr)
    print(f"eFEDS tables: {args.data}; {len(table)} clusters, {int(table['secure'].sum())} "
          f"secure; L_X(R500c)/L_X(500 kpc) median {np.median(corr[sec]):.3f} "
          f"(16-84 %: {np.percentile(corr[sec], 15.865):.3f}-"
          f"{np.percentile(corr[sec], 84.135):.3f}) for {sec.sum()} secure clusters with L_X")
    print_rows(rows, "shipped relations (lx-chiu22 with the aperture correction):")
    if not args.no_alternatives:
        print_rows(alternatives(args.data),
                   "other readings (secure, calibrated z range; nothing fitted):")
    if args.static:
        plot(table, args.static)
    print(f"\n(elapsed {time.time() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
