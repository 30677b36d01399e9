"""The scaling-relation estimators on the real eFEDS clusters, against their published masses.

Three public tables of the eROSITA Final Equatorial-Depth Survey (eFEDS) cluster sample
are joined (on ``ID_SRC``, then on ``Name``):

- Liu et al. (2022, A&A 661, A2), X-ray catalogue: redshift and rest-frame 0.5-2 keV
  luminosity within 500 kpc (``L_500kpc`` with lower/upper bounds; -1 = not measured);
- Klein et al. (2022, A&A 661, A4), optical counterparts: ``ML_RATE`` and
  ``ML_RATE_ERR`` (0.2-2.3 keV, ct/s), ``Z_BEST_COMB``, and the contamination
  probability ``F_CONT_BEST_COMB`` ("secure" clusters: < 0.2);
- Chiu et al. (2022, A&A 661, A11), mass table: ``median_500c_lcdm`` = log10(M500c /
  (h^-1 Msun)) and its errors, weak-lensing calibrated, from the count rates.

`validate` runs ``lx-chiu22`` and ``cr-erass1`` through
`~astro_clustermass.add_mass_columns` on these columns and compares their masses with
the published ones (h = 0.7). Nothing is fitted: the relations are used as shipped.
The published masses come from the same count rates through another (eFEDS)
calibration, so they are a consistency reference, not an independent truth.

A trimmed copy of the three tables, with its provenance, is in the repository's
``tests/data/efeds``; `trim_tables` writes it from the originals.
"""

from __future__ import annotations

import os

import numpy as np
from astropy import units as u
from astropy.table import QTable, Table, join

__all__ = ["FILES", "LITTLE_H", "Z_BINS", "read_efeds", "estimate_efeds", "summarize",
           "validate", "trim_tables"]

#: The three public tables, by their file names.
FILES = {"liu": "efeds_xray_cluster_candidates.csv",
         "klein": "efeds_cluster_candidate_optical_counterparts.csv",
         "chiu": "eFEDSmasstable_public_inonchiu.fits"}

#: Columns kept by `trim_tables` (and read by `read_efeds`).
COLUMNS = {"liu": ["ID", "ID_SRC", "z", "z_type", "L_300kpc", "L_300kpc_L", "L_300kpc_U",
                   "L_500kpc", "L_500kpc_L", "L_500kpc_U"],
           "klein": ["Name", "ID_SRC", "EXT_LIKE", "DET_LIKE", "ML_RATE", "ML_RATE_ERR",
                     "Z_BEST_COMB", "F_CONT_BEST_COMB"],
           "chiu": ["Name", "Z_BEST_COMB", "r500c_lcdm", "median_500c_lcdm",
                    "m500c_lcdm_hierr", "m500c_lcdm_loerr"]}

#: Little h of the published masses (in h^-1 Msun) -> h-free Msun.
LITTLE_H = 0.7

#: Contamination probability below which a cluster is "secure".
SECURE = 0.2

#: Redshift bins of the report.
Z_BINS = ((0.0, 0.2), (0.2, 0.35), (0.35, 0.5), (0.5, 0.8), (0.8, 1.4))

#: The luminosity aperture of Liu et al. used here (physical).
APERTURE = 500.0 * u.kpc


def _read(directory, key):
    import warnings

    path = os.path.join(os.fspath(directory), FILES[key])
    if not os.path.exists(path):
        raise FileNotFoundError(f"eFEDS table {path!r} not found (expected {FILES[key]} in "
                                f"{os.fspath(directory)!r})")
    with warnings.catch_warnings():  # 'Msun/h' is not a FITS unit
        warnings.simplefilter("ignore", u.UnitsWarning)
        table = Table.read(path)
    missing = [c for c in COLUMNS[key] if c not in table.colnames]
    if missing:
        raise KeyError(f"{path}: missing column(s) {missing}")
    return table[COLUMNS[key]]


def read_efeds(directory, relation="lx-chiu22"):
    """The joined eFEDS cluster table, one row per cluster, with units.

    Parameters
    ----------
    directory : str or path-like
        Folder holding the three files of `FILES` (the originals or the trimmed copies).
    relation : str
        L_X relation whose fiducial cosmology the luminosities are re-expressed in.

    Returns
    -------
    `~astropy.table.QTable`
        Columns: ``Name``, ``ID_SRC``, ``Z_BEST_COMB`` (the redshift of the count rates
        and of the published masses), ``z_liu``, ``secure`` (``F_CONT_BEST_COMB`` <
        0.2), ``ML_RATE``, ``ML_RATE_ERR`` [ct/s, 0.2-2.3 keV, band recorded in the
        column meta], ``L_500kpc``, ``L_500kpc_err`` [erg/s; rescaled from Liu et
        al.'s redshift to ``Z_BEST_COMB`` by (D_L(z) / D_L(z_liu))^2; NaN where only an
        upper limit was measured; the error is half the bounds' range],
        ``log10M500c_published`` and ``log10M500c_published_err`` [dex, h-free Msun,
        h = 0.7; the error is half the range of the published errors].
    """
    from .base import load_relation

    liu, klein, chiu = (_read(directory, k) for k in ("liu", "klein", "chiu"))
    liu.rename_column("z", "z_liu")
    joined = join(join(liu, klein, keys="ID_SRC"), chiu, keys="Name",
                  table_names=["klein", "chiu"], uniq_col_name="{col_name}_{table_name}")
    if len(joined) != len(klein):
        raise ValueError(f"{directory}: the join kept {len(joined)} of {len(klein)} clusters")
    zb = np.asarray(joined["Z_BEST_COMB_klein"], float)
    if not np.allclose(zb, np.asarray(joined["Z_BEST_COMB_chiu"], float)):
        raise ValueError("Klein et al. and Chiu et al. disagree on Z_BEST_COMB")
    cosmo = load_relation(relation).fiducial_cosmology
    zl = np.asarray(joined["z_liu"], float)
    dl2 = (cosmo.luminosity_distance(zb) / cosmo.luminosity_distance(zl)).to_value(u.one) ** 2
    lum = np.asarray(joined["L_500kpc"], float)
    lo, hi = (np.asarray(joined[c], float) for c in ("L_500kpc_L", "L_500kpc_U"))
    measured = (lum > 0) & (lo > 0) & (hi > 0)
    log_m = np.asarray(joined["median_500c_lcdm"], float)  # log10(M / (Msun/h))
    m = 10.0 ** log_m
    m_hi = m + np.asarray(joined["m500c_lcdm_hierr"], float)
    m_lo = m - np.asarray(joined["m500c_lcdm_loerr"], float)
    out = QTable({
        "Name": joined["Name"], "ID_SRC": joined["ID_SRC"], "Z_BEST_COMB": zb, "z_liu": zl,
        "F_CONT_BEST_COMB": np.asarray(joined["F_CONT_BEST_COMB"], float),
        "secure": np.asarray(joined["F_CONT_BEST_COMB"], float) < SECURE,
        "ML_RATE": np.asarray(joined["ML_RATE"], float) * u.ct / u.s,
        "ML_RATE_ERR": np.asarray(joined["ML_RATE_ERR"], float) * u.ct / u.s,
        "L_500kpc": np.where(measured, lum * dl2, np.nan) * u.erg / u.s,
        "L_500kpc_err": np.where(measured, 0.5 * (hi - lo) * dl2, np.nan) * u.erg / u.s,
        "log10M500c_published": (log_m - np.log10(LITTLE_H)) * u.dex,
        "log10M500c_published_err": 0.5 * np.log10(m_hi / np.where(m_lo > 0, m_lo, np.nan))
        * u.dex,
    })
    for name in ("ML_RATE", "ML_RATE_ERR"):  # Klein et al.: 0.2-2.3 keV
        out[name].info.meta = {"band_keV": [0.2, 2.3]}
    out.meta["efeds_source"] = os.fspath(directory)
    return out


def estimate_efeds(catalog, aperture=True, lx_relation=None, cr_relation=None,
                   core_radius=None):
    """Masses of ``lx-chiu22`` and ``cr-erass1`` for the joined table (all rows).

    Parameters
    ----------
    catalog : `~astropy.table.QTable`
        From `read_efeds`.
    aperture : bool
        Take the 500 kpc luminosities to R500c with
        `~astro_clustermass.relations.lx.luminosity_within_r500` (the package
        simulator's median beta model); False uses them as they are.
    lx_relation, cr_relation : `~astro_clustermass.relations.base.ScalingRelation`, optional
        Other readings of the relations (for the report's comparison rows); default
        the shipped ones.
    core_radius : float, optional
        r_c / R500c of the aperture correction's beta model (default: the simulator's
        median, `~astro_clustermass.relations.lx.aperture_correction`).

    Returns
    -------
    `~astropy.table.QTable`
        ``catalog`` with ``LX``, ``LX_err``, ``aperture_correction`` and the mass
        columns of both estimators (`~astro_clustermass.add_mass_columns`; ``z`` is
        mapped to ``Z_BEST_COMB``, the count rates are read from ``ML_RATE`` and
        ``ML_RATE_ERR`` under their aliases).
    """
    from ..api import add_mass_columns
    from .base import load_relation
    from .estimators import ScalingRelationEstimator
    from .lx import luminosity_within_r500

    lx_rel = lx_relation or load_relation("lx-chiu22")
    cr_rel = cr_relation or load_relation("cr-erass1")
    table = catalog.copy()
    z = np.asarray(table["Z_BEST_COMB"], float)
    lum = u.Quantity(table["L_500kpc"], u.erg / u.s)
    corr = np.ones(len(table))
    if aperture:
        ok = np.isfinite(lum.value)
        corr = np.full(len(table), np.nan)
        profile = {} if core_radius is None else {"core_radius": float(core_radius)}
        corr[ok] = luminosity_within_r500(lum[ok], APERTURE, z[ok], relation=lx_rel,
                                          **profile)[1]
    table["aperture_correction"] = corr
    table["LX"] = lum * corr
    table["LX_err"] = u.Quantity(table["L_500kpc_err"], u.erg / u.s) * corr
    estimators = [ScalingRelationEstimator(lx_rel, name="lx-chiu22"),
                  ScalingRelationEstimator(cr_rel, name="cr-erass1")]
    return add_mass_columns(table, estimators=estimators, column_map={"z": "Z_BEST_COMB"})


def summarize(table, name, rows):
    """Median offset, 16-84 % half-width and coverage of ``name``'s masses on ``rows``.

    Parameters
    ----------
    table : `~astropy.table.QTable`
        From `estimate_efeds`.
    name : str
        Estimator name.
    rows : array of bool
        Rows to summarise (rows without an estimate are left out).

    Returns
    -------
    dict
        ``n``; ``median`` and ``half_width`` [dex] of log10 M_est - log10
        M_published (half the 16-84 % range); ``coverage``: fraction of published
        masses inside the estimate's 16-84 % interval; ``mean_sigma`` and
        ``mean_published_sigma`` [dex]; ``pull_half_width``: half the 16-84 % range of
        the offset over the estimate's and the published sigma in quadrature (1 if both
        sigmas described the differences and the two were independent).
    """
    valid = ~np.ma.getmaskarray(table[f"log10M500c_{name}"]) & np.asarray(rows, bool)
    mu, sig, pub, pub_err = (_values(table[c])[valid] for c in (
        f"log10M500c_{name}", f"log10M500c_{name}_err", "log10M500c_published",
        "log10M500c_published_err"))
    lo, hi = (np.log10(_values(table[f"M500c_{name}_{end}"], u.Msun))[valid]
              for end in ("lo", "hi"))
    if not valid.any():
        return {"n": 0}
    d = mu - pub
    q16, q50, q84 = np.percentile(d, [15.865, 50.0, 84.135])
    pull = d / np.hypot(sig, pub_err)
    p16, p84 = np.percentile(pull, [15.865, 84.135])
    return {"n": int(valid.sum()), "median": float(q50), "half_width": float(0.5 * (q84 - q16)),
            "coverage": float(np.mean((pub >= lo) & (pub <= hi))),
            "mean_sigma": float(np.mean(sig)), "mean_published_sigma": float(np.mean(pub_err)),
            "pull_half_width": float(0.5 * (p84 - p16))}


def _values(column, unit=None):
    """Plain float values of a (masked) Quantity column, masked entries as they are."""
    q = getattr(column, "unmasked", column)
    q = q.to(unit) if unit is not None else q
    return np.asarray(getattr(q, "value", q), dtype=float)


def validate(directory, aperture=True, lx_relation=None, cr_relation=None, z_bins=Z_BINS,
             core_radius=None):
    """Estimate and summarise, secure clusters only, overall and per redshift bin.

    ``core_radius`` (r_c / R500c) replaces the aperture correction's default profile.

    Returns
    -------
    table : `~astropy.table.QTable`
        From `estimate_efeds`.
    rows : list of dict
        One per estimator and sample (``estimator``, ``sample`` and the entries of
        `summarize`). Samples: all secure clusters; those inside the relation's
        calibrated redshift range; each bin of ``z_bins``.
    """
    table = estimate_efeds(read_efeds(directory), aperture, lx_relation, cr_relation,
                           core_radius=core_radius)
    z = np.asarray(table["Z_BEST_COMB"], float)
    secure = np.asarray(table["secure"], bool)
    rows = []
    for name in ("lx-chiu22", "cr-erass1"):
        zlo, zhi = table.meta["astro_clustermass"][name]["parameters"]["z_range"]
        samples = [("secure, all z", secure),
                   (f"secure, {zlo:g} <= z <= {zhi:g}", secure & (z >= zlo) & (z <= zhi))]
        samples += [(f"secure, {a:g} <= z < {b:g}", secure & (z >= a) & (z < b))
                    for a, b in z_bins]
        rows += [{"estimator": name, "sample": label, **summarize(table, name, sel)}
                 for label, sel in samples]
    return table, rows


def trim_tables(source, destination):
    """Write the columns of `COLUMNS` of the three tables (all rows) to ``destination``.

    The copies keep the file names and formats of the originals, so `read_efeds`
    reads either. Provenance: ``tests/data/efeds/README.md``.
    """
    os.makedirs(destination, exist_ok=True)
    for key, fname in FILES.items():
        table = _read(source, key)
        path = os.path.join(destination, fname)
        if fname.endswith(".fits"):
            import warnings

            table.meta.update(ORIGIN="inonchiu/eFEDSproducts @ 7241347 (Chiu et al. 2022)",
                              COMMENT=["trimmed copy by astro_clustermass.relations.efeds"])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", u.UnitsWarning)
                table.write(path, overwrite=True)
        else:
            table.write(path, format="ascii.csv", overwrite=True)
    return destination
