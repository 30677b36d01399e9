"""How much the simulated sky looks like the real eFEDS cluster catalogue, observable by observable.

The reference is the published eFEDS cluster-candidate table (Klein et al. 2022, A&A 661,
A4; X-ray columns from Liu et al. 2022, A&A 661, A2), shipped trimmed in
``astro_clustermass/data/efeds`` (its README gives the provenance). Both sides use the eFEDS
selection ``EXT_LIKE > 6 & DET_LIKE > 5``:

- the observables ``ML_RATE, EXT, EXT_LIKE, DET_LIKE, ML_BKG, ML_EXP, ML_CTS`` over *all*
  selected sources (the real catalogue contains its contaminants too);
- the redshift over the clusters only: real candidates with ``F_CONT_BEST_COMB < 0.2``
  (Klein et al.'s "secure" clusters) against the true redshift of the simulated detections
  matched to a cluster (``MATCHED``);
- the selected density per deg^2 (eFEDS: 542 over 140 deg^2) and the non-cluster fraction
  (real: ``F_CONT_BEST_COMB >= 0.2``, the optical follow-up finds no cluster there;
  simulated: the selected detections whose photons come from no cluster, ``MATCH_TYPE``
  ``agn`` or ``spurious``). A fragment of a simulated cluster (``cluster-fragment``: a
  second detection of the same cluster) is not counted as a non-cluster, since the optical
  follow-up would find that cluster at its position; the fraction of fragments is
  reported separately (``fragment_fraction``).

For each observable: the 5/25/50/75/95 % quantiles, the two-sample Kolmogorov-Smirnov
distance and p-value (simulation pooled over the realisations given), the relative
difference of the medians (redshift: the absolute difference), and per realisation the KS
distance and the median, to show the seed-to-seed spread. `REQUIREMENTS` holds the
thresholds of issue 21 and `check_requirements` applies them.

Example
-------
>>> from astro_clustermass.simulate import realism
>>> real = realism.read_efeds_clusters()
>>> len(real)
542
>>> round(realism.EFEDS_DENSITY_DEG2, 2)
3.87
"""

from __future__ import annotations

import os

import numpy as np
from astropy.table import Table

from ..utils.data import package_data

__all__ = ["EFEDS_TABLE", "EFEDS_AREA_DEG2", "EFEDS_DENSITY_DEG2", "OBSERVABLES", "REQUIREMENTS",
           "read_efeds_clusters", "read_fields", "selected", "compare_with_efeds",
           "check_requirements",
           "format_table"]

EFEDS_TABLE = package_data("efeds", "efeds_klein22_clusters.ecsv")
#: eFEDS field area [deg^2] (Brunner et al. 2022: about 140 deg^2)
EFEDS_AREA_DEG2 = 140.0
#: eFEDS candidates (EXT_LIKE > 6 & DET_LIKE > 5) per deg^2: 542 / 140
EFEDS_DENSITY_DEG2 = 542 / EFEDS_AREA_DEG2
#: real candidates with a contamination probability at least this are "not a cluster"
F_CONT_LIMIT = 0.2

#: compared observables: name -> (column in the detection table, unit, clusters only)
OBSERVABLES = {
    "ML_RATE": ("ML_RATE", "ct/s", False),
    "EXT": ("EXT", "arcsec", False),
    "EXT_LIKE": ("EXT_LIKE", "", False),
    "DET_LIKE": ("DET_LIKE", "", False),
    "ML_BKG": ("ML_BKG", "ct/arcmin2", False),
    "ML_EXP": ("ML_EXP", "s", False),
    "ML_CTS": ("ML_CTS", "ct", False),
    "z": ("z", "", True),
}

#: issue 21's "Required": (KS distance max, median tolerance, tolerance kind) per observable,
#: and the density and non-cluster-fraction ranges
REQUIREMENTS = {
    "observables": {"EXT": (0.12, 0.10, "relative"), "EXT_LIKE": (0.12, 0.10, "relative"),
                    "DET_LIKE": (0.12, 0.10, "relative"), "ML_RATE": (0.12, 0.10, "relative"),
                    "ML_EXP": (0.12, 0.10, "relative"), "z": (0.12, 0.04, "absolute")},
    "density_ratio": (0.8, 1.2),
    "non_cluster_fraction": (0.10, 0.25),
}

_QUANTILES = (5, 25, 50, 75, 95)


def _values(col):
    return np.asarray(getattr(col, "value", col), float)


def read_efeds_clusters(path=EFEDS_TABLE):
    """The real eFEDS cluster candidates (Klein et al. 2022), with ``z`` and ``NOT_CLUSTER``.

    Parameters
    ----------
    path : str
        The trimmed table shipped in ``astro_clustermass/data/efeds``.

    Returns
    -------
    `~astropy.table.Table`
        542 rows: the eSASS columns (EXT [arcsec], ML_RATE [ct/s], ML_BKG [ct/arcmin^2],
        ML_EXP [s], ...), ``z`` (= ``Z_BEST_COMB``) and ``NOT_CLUSTER``
        (``F_CONT_BEST_COMB >= 0.2``).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"eFEDS cluster table not found: {path}")
    t = Table.read(path, format="ascii.ecsv")
    missing = [c for c, _, _ in OBSERVABLES.values() if c != "z" and c not in t.colnames]
    missing += [c for c in ("Z_BEST_COMB", "F_CONT_BEST_COMB") if c not in t.colnames]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    t["z"] = t["Z_BEST_COMB"]
    t["NOT_CLUSTER"] = _values(t["F_CONT_BEST_COMB"]) >= F_CONT_LIMIT
    return t


def read_fields(dirs):
    """Field-mode realisations as `compare_with_efeds` takes them.

    Parameters
    ----------
    dirs : list of str
        Output directories of ``astro-clustermass simulate --mode field``.

    Returns
    -------
    list of (detections, area_deg2, seed)

    Raises
    ------
    ValueError
        Naming a directory that holds another kind of realisation.
    """
    from .io import read_realisation

    out = []
    for d in dirs:
        r = read_realisation(d)
        if r.manifest.get("mode") != "field":
            raise ValueError(f"{d} is not a field-mode realisation")
        out.append((r.detections, float(r.manifest["area_deg2"]), r.manifest["seed"]))
    return out


def selected(det, ext_like_min=6.0, det_like_min=5.0):
    """Boolean mask of the eFEDS selection ``EXT_LIKE > 6 & DET_LIKE > 5``."""
    for c in ("EXT_LIKE", "DET_LIKE"):
        if c not in det.colnames:
            raise ValueError(f"detection table has no column {c!r}")
    return (_values(det["EXT_LIKE"]) > ext_like_min) & (_values(det["DET_LIKE"]) > det_like_min)


def _sim_columns(det):
    """Selected simulated detections: dict of arrays per observable, and the non-cluster mask."""
    sel = selected(det)
    if "MATCHED" not in det.colnames:
        raise ValueError("detection table has no column 'MATCHED' (use read_realisation)")
    matched = np.asarray(det["MATCHED"], bool)[sel]
    if "MATCH_TYPE" in det.colnames:
        mtype = np.asarray(det["MATCH_TYPE"]).astype(str)[sel]
        non_cluster = np.isin(mtype, ("agn", "spurious"))
        fragment = mtype == "cluster-fragment"
    else:
        non_cluster, fragment = ~matched, np.zeros(matched.size, bool)
    out = {}
    for name, (col, _, clusters_only) in OBSERVABLES.items():
        if col not in det.colnames:
            raise ValueError(f"detection table has no column {col!r}")
        v = _values(det[col])[sel]
        out[name] = v[matched] if clusters_only else v
    return out, non_cluster, fragment


def _real_columns(real):
    out = {}
    secure = ~np.asarray(real["NOT_CLUSTER"], bool)
    for name, (col, _, clusters_only) in OBSERVABLES.items():
        v = _values(real[col])
        out[name] = v[secure] if clusters_only else v
    return out


def compare_with_efeds(realisations, real=None):
    """Compare selected simulated detections with the real eFEDS catalogue.

    Parameters
    ----------
    realisations : list of (detections, area_deg2[, label])
        Detection tables of field-mode realisations (``read_realisation(d).detections``:
        eSASS columns plus ``MATCHED`` and the matched truth's ``z``) with their areas
        [deg^2] and an optional label (e.g. the seed).
    real : `~astropy.table.Table`, optional
        Default: `read_efeds_clusters`.

    Returns
    -------
    dict
        ``observables``: name -> dict with ``unit``, ``n_real``, ``n_sim``, ``q_real`` and
        ``q_sim`` (5/25/50/75/95 % quantiles), ``ks_d``, ``ks_p``, ``median_diff``
        (relative; redshift: absolute), ``per_realisation`` (label -> (KS distance,
        median)); ``density``: selected per deg^2 (real, simulated pooled, per
        realisation, ratio); ``non_cluster_fraction``: (real, simulated pooled, per
        realisation); ``fragment_fraction``: simulated, pooled.
    """
    from scipy.stats import ks_2samp

    if real is None:
        real = read_efeds_clusters()
    if len(realisations) == 0:
        raise ValueError("no realisations given")
    rv = _real_columns(real)
    per, area, n_sel, n_non, n_frag = [], 0.0, 0, 0, 0
    for k, item in enumerate(realisations):
        det, a = item[0], float(item[1])
        label = str(item[2]) if len(item) > 2 else str(k)
        cols, non, frag = _sim_columns(det)
        per.append((label, cols, non, a))
        area += a
        n_sel += non.size
        n_non += int(non.sum())
        n_frag += int(frag.sum())
    pooled = {name: np.concatenate([p[1][name] for p in per]) for name in OBSERVABLES}
    out = {"observables": {}, "labels": [p[0] for p in per], "area_deg2": area}
    for name, (_, unit, clusters_only) in OBSERVABLES.items():
        r, s = rv[name], pooled[name]
        s = s[np.isfinite(s)]
        entry = {"unit": unit, "clusters_only": clusters_only, "n_real": int(r.size),
                 "n_sim": int(s.size), "q_real": np.percentile(r, _QUANTILES).tolist()}
        if s.size:
            ks = ks_2samp(r, s)
            med_r, med_s = float(np.median(r)), float(np.median(s))
            entry.update(q_sim=np.percentile(s, _QUANTILES).tolist(), ks_d=float(ks.statistic),
                         ks_p=float(ks.pvalue),
                         median_diff=(med_s - med_r) if name == "z" else (med_s / med_r - 1))
        else:
            entry.update(q_sim=[np.nan] * len(_QUANTILES), ks_d=np.nan, ks_p=np.nan,
                         median_diff=np.nan)
        entry["per_realisation"] = {}
        for label, cols, _, _ in per:
            v = cols[name][np.isfinite(cols[name])]
            entry["per_realisation"][label] = (
                (float(ks_2samp(r, v).statistic), float(np.median(v))) if v.size
                else (np.nan, np.nan))
        out["observables"][name] = entry
    d_sim = n_sel / area
    out["density"] = {"real": EFEDS_DENSITY_DEG2, "sim": d_sim,
                      "ratio": d_sim / EFEDS_DENSITY_DEG2,
                      "per_realisation": {p[0]: p[2].size / p[3] for p in per}, "n_sim": n_sel}
    out["non_cluster_fraction"] = {
        "real": float(np.mean(real["NOT_CLUSTER"])), "sim": n_non / max(n_sel, 1),
        "per_realisation": {p[0]: float(p[2].mean()) if p[2].size else np.nan for p in per}}
    out["fragment_fraction"] = n_frag / max(n_sel, 1)
    return out


def check_requirements(result, requirements=REQUIREMENTS):
    """Apply issue 21's thresholds to `compare_with_efeds`'s result.

    Returns
    -------
    dict: item -> (value(s), bool passes)
    """
    out = {}
    lo, hi = requirements["density_ratio"]
    r = result["density"]["ratio"]
    out["density"] = (r, bool(lo <= r <= hi))
    lo, hi = requirements["non_cluster_fraction"]
    f = result["non_cluster_fraction"]["sim"]
    out["non_cluster_fraction"] = (f, bool(lo <= f <= hi))
    for name, (dmax, tol, _kind) in requirements["observables"].items():
        e = result["observables"][name]
        ok = bool(e["ks_d"] <= dmax and abs(e["median_diff"]) <= tol)
        out[name] = ((e["ks_d"], e["median_diff"]), ok)
    return out


def format_table(result, fmt="rst"):
    """The comparison as a text table (``fmt``: "rst" grid or "plain")."""
    rows = [("observable", "real 25/50/75 % (95 %)", "simulated 25/50/75 % (95 %)", "KS D",
             "KS p", "median")]

    def q(v):
        return f"{v[1]:.3g} / {v[2]:.3g} / {v[3]:.3g} ({v[4]:.3g})"

    for name, e in result["observables"].items():
        md = e["median_diff"]
        md_s = f"{md:+.3f}" if name == "z" else f"{100 * md:+.0f} %"
        label = f"{name} [{e['unit']}]" if e["unit"] else name
        if e["clusters_only"]:
            label += " (clusters)"
        rows.append((label, q(e["q_real"]), q(e["q_sim"]), f"{e['ks_d']:.3f}",
                     f"{e['ks_p']:.2g}", md_s))
    d, nc = result["density"], result["non_cluster_fraction"]
    rows.append(("selected per deg^2", f"{d['real']:.2f}", f"{d['sim']:.2f}", "", "",
                 f"{100 * (d['ratio'] - 1):+.0f} %"))
    rows.append(("not a cluster", f"{100 * nc['real']:.1f} %", f"{100 * nc['sim']:.1f} %", "", "",
                 ""))
    rows.append(("cluster fragments", "", f"{100 * result['fragment_fraction']:.1f} %", "", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(r):
        return "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()

    if fmt == "plain":
        return "\n".join(line(r) for r in rows)
    sep = "  ".join("=" * w for w in widths)
    return "\n".join([sep, line(rows[0]), sep] + [line(r) for r in rows[1:]] + [sep])
