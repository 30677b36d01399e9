#!/usr/bin/env python
"""The simulated sky against the real eFEDS cluster catalogue, observable by observable.

Compares the selected detections (EXT_LIKE > 6 & DET_LIKE > 5) of field-mode realisations
with the real eFEDS candidates (Klein et al. 2022, shipped in astro_clustermass/data/efeds)
through `astro_clustermass.simulate.realism`: quantiles, KS distance and p of ML_RATE, EXT,
EXT_LIKE, DET_LIKE, ML_BKG, ML_EXP, ML_CTS and the clusters' redshift, the selected
density and the non-cluster fraction, pooled and per realisation, and issue 21's
requirements. Figures (real and simulated side by side, and the EXT-ML_RATE and
EXT_LIKE-ML_CTS planes) go to ``--static``.

Usage::

    # simulate the fields first (seeds fixed before looking; ~1-2 min each on 2 cores)
    for s in 2101 2102 2103; do
        astro-clustermass simulate -o /work/sim_output/i21/f40_$s --mode field --area 40 --seed $s
    done
    python benchmarks/validate_realism.py /work/sim_output/i21/f40_* \\
        --static docs/_static --tag after --json realism.json
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np


def load(dirs):
    """`astro_clustermass.simulate.realism.read_fields`, ending the script with its message."""
    from astro_clustermass.simulate import realism

    try:
        return realism.read_fields(dirs)
    except ValueError as err:
        raise SystemExit(str(err)) from None


def _arr(col):
    return np.asarray(getattr(col, "value", col), float)


def plot(realisations, result, static, tag):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from astro_clustermass.simulate import realism

    real = realism.read_efeds_clusters()
    sim = []
    for det, _, _ in realisations:
        sim.append(det[realism.selected(det)])
    secure = ~np.asarray(real["NOT_CLUSTER"], bool)
    names = list(realism.OBSERVABLES)
    fig, axes = plt.subplots(2, 4, figsize=(15, 7))
    for ax, name in zip(axes.ravel(), names):
        col, unit, clusters_only = realism.OBSERVABLES[name]
        r = _arr(real[col])[secure] if clusters_only else _arr(real[col])
        s = np.concatenate([_arr(d[col])[np.asarray(d["MATCHED"], bool)] if clusters_only
                            else _arr(d[col]) for d in sim])
        s = s[np.isfinite(s)]
        logx = name in ("ML_RATE", "EXT_LIKE", "DET_LIKE", "ML_CTS")
        lo, hi = np.percentile(np.concatenate([r, s]), [0.5, 99.5])
        if logx:
            bins = np.geomspace(max(lo, 1e-6), hi, 30)
            ax.set_xscale("log")
        else:
            bins = np.linspace(lo, hi, 30)
        ax.hist(r, bins, density=True, histtype="step", lw=2, color="k", label="eFEDS (real)")
        ax.hist(s, bins, density=True, histtype="step", lw=1.5, color="C1", label="simulated")
        e = result["observables"][name]
        ax.set_title(f"{name}{' (clusters)' if clusters_only else ''}: KS D = {e['ks_d']:.2f}",
                     fontsize=10)
        ax.set_xlabel(f"{name} [{unit}]" if unit else name)
    axes[0, 0].legend(fontsize=8)
    d = result["density"]
    fig.suptitle(f"selected sources: real {d['real']:.2f}/deg², simulated {d['sim']:.2f}/deg² "
                 f"({len(realisations)} fields, {result['area_deg2']:.0f} deg²); not a cluster: "
                 f"real {100 * result['non_cluster_fraction']['real']:.0f} %, simulated "
                 f"{100 * result['non_cluster_fraction']['sim']:.0f} %")
    fig.tight_layout()
    p1 = os.path.join(static, f"realism_observables_{tag}.png")
    fig.savefig(p1, dpi=90)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, (xc, yc) in zip(axes, (("ML_RATE", "EXT"), ("ML_CTS", "EXT_LIKE"))):
        ax.scatter(_arr(real[xc]), _arr(real[yc]), s=8, c="k", alpha=0.6, label="eFEDS (real)")
        sx = np.concatenate([_arr(t[xc]) for t in sim])
        sy = np.concatenate([_arr(t[yc]) for t in sim])
        nonc = np.concatenate([~np.asarray(t["MATCHED"], bool) for t in sim])
        ax.scatter(sx[~nonc], sy[~nonc], s=8, c="C1", alpha=0.5, label="simulated cluster")
        ax.scatter(sx[nonc], sy[nonc], s=10, c="C0", marker="x", alpha=0.6,
                   label="simulated non-cluster")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xc)
        ax.set_ylabel(yc)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    p2 = os.path.join(static, f"realism_planes_{tag}.png")
    fig.savefig(p2, dpi=90)
    plt.close(fig)
    return [p1, p2]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dirs", nargs="+", help="field-mode realisation directories")
    p.add_argument("--static", default=None, help="write the figures to this folder")
    p.add_argument("--tag", default="sim", help="figure name suffix")
    p.add_argument("--json", default=None, help="write the result as JSON")
    a = p.parse_args(argv)
    from astro_clustermass.simulate import realism

    reals = load(a.dirs)
    res = realism.compare_with_efeds(reals)
    print(realism.format_table(res))
    print("\nper realisation (KS D / median):")
    for name, e in res["observables"].items():
        per = "  ".join(f"{k}: {v[0]:.3f} / {v[1]:.3g}" for k, v in e["per_realisation"].items())
        print(f"  {name:9s} {per}")
    dens = res["density"]["per_realisation"].items()
    print("  density   " + "  ".join(f"{k}: {v:.2f}" for k, v in dens))
    nonc = res["non_cluster_fraction"]["per_realisation"].items()
    print("  non-cl.   " + "  ".join(f"{k}: {v:.3f}" for k, v in nonc))
    req = realism.check_requirements(res)
    print("\nissue 21 requirements:")
    for k, (v, ok) in req.items():
        print(f"  {k:22s} {'pass' if ok else 'FAIL'}  {v}")
    res["requirements"] = {k: [v, ok] for k, (v, ok) in req.items()}
    if a.static:
        os.makedirs(a.static, exist_ok=True)
        res["figures"] = plot(reals, res, a.static, a.tag)
        print("figures:", *res["figures"])
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1, default=float)


if __name__ == "__main__":
    main()
