"""Realism of the mock eFEDS sky (figures in docs/validation.rst, "Simulated sky realism").

Reads field-mode realisations of `astro_clustermass.simulate` (``simulate_field`` output
directories) and, optionally, a stamps-mode run, and measures:

1. selected clusters (EXT_LIKE > 6 & DET_LIKE > 5) per 140 deg^2, all and matched to a
   simulated cluster, with Poisson errors, against real eFEDS (542 candidates, Liu et
   al. 2022) and the seeds' simulation (~440, seed 000 sect. 2): pass if within x1.5;
2. mass and redshift distributions of the matched selected clusters (plot, median z
   against seed 000's ~0.35);
3. the background the detection measured from the photons (ML_BKG per unvignetted
   exposure at each detection, the eSASS-like background map of the simulator's
   detection) against the level of the real eFEDS background spectrum shipped in
   ``astro_clustermass/data/erosita`` (pass if within 10 %);
4. the 0.2-2.3 keV count rate per unit 0.5-2 keV flux of the simulated clusters, counted
   from their photons in the event files, against the package's own folding of the real
   eFEDS ARF (`astro_clustermass.xray.ecf`, an independent code path; pass if within 10 %);
5. the scatter of the simulated L_X-M relation and of the measured count rate (ML_RATE)
   at fixed mass and redshift;
6. the number counts N(>S) of all simulated halos (before detection), against the ROSAT
   serendipitous counts of Collins et al. (1997);
7. with ``--contamination``: what the selected sources matched to an AGN are made of
   (photons within 60" by origin: the matched AGN, other AGN, clusters, background),
   against point-like AGN detections of the same counts, and the fraction of detections
   called extended per ML_CTS bin in the simulation (AGN, clusters) and in the real
   eSASS ``ermldet`` list shipped in ``shared/data/erosita`` (a deep pointed field, its
   summed-band counts and extent from a joint fit of four bands: a reference for the
   shape, not like-for-like, its background per arcmin^2 being ten to thirty times
   eFEDS's).

    python benchmarks/validate_simulate.py /work/sim_output/realism/f9_s* \\
        [--stamps DIR] [--static docs/_static] [--json out.json]

Simulate the fields first, e.g.
``python -c "from astro_clustermass.simulate import simulate_field; simulate_field('f9_s11',
area=9, seed=11)"`` (about 25 s each on a 2-core machine).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import subprocess

import numpy as np

EFEDS_CANDIDATES = 542   # Liu et al. 2022, EXT_LIKE > 6 & DET_LIKE > 5 over 140 deg^2
SEED_SIMULATION = 440    # seed 000 sect. 2 (its simulated eFEDS field)
AREA_EFEDS = 140.0


def _sel(det):
    return (np.asarray(det["EXT_LIKE"], float) > 6) & (np.asarray(det["DET_LIKE"], float) > 5)


def _per140(n, area):
    """Count scaled to 140 deg^2 with its Poisson error."""
    return n * AREA_EFEDS / area, np.sqrt(max(n, 1)) * AREA_EFEDS / area


def _fit_residual_scatter(y, x1, x2):
    """Std of the residuals of y = a + b x1 + c x2 (least squares) and the coefficients."""
    a = np.column_stack([np.ones_like(x1), x1, x2])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    res = y - a @ coef
    return float(np.std(res, ddof=3)), coef


def measure(field_dirs, stamps_dir=None):
    from astropy.table import vstack

    from astro_clustermass.simulate import read_realisation, survey
    from astro_clustermass.simulate.config import SimConfig
    from astro_clustermass.simulate.spectra import background_spectrum
    from astro_clustermass.xray import ecf

    dets, truths, area, seeds = [], [], 0.0, []
    boxes = {}
    for d in field_dirs:
        r = read_realisation(d)
        if r.manifest.get("mode") != "field":
            raise ValueError(f"{d} is not a field-mode realisation")
        area += float(r.manifest["area_deg2"])
        seeds.append(r.manifest["seed"])
        boxes[str(d)] = survey.field_box(float(r.manifest["area_deg2"]),
                                         tuple(r.manifest.get("center_deg", (136.0, 1.5))))
        det, truth = r.detections, r.truth
        det["realisation"] = str(d)
        truth["realisation"] = str(d)
        # photons per halo in the event file, for the count rate per flux
        ev = r.events
        src = np.asarray(ev["SRC_ID"])
        ids, counts = np.unique(src[src > 0], return_counts=True)
        nph = np.zeros(len(truth), int)
        pos = np.searchsorted(ids, np.asarray(truth["HALO_ID"]))
        ok = (pos < ids.size) & (ids[np.minimum(pos, ids.size - 1)] == np.asarray(truth["HALO_ID"]))
        nph[ok] = counts[pos[ok]]
        truth["n_photons_file"] = nph
        dets.append(det)
        truths.append(truth)
        config = SimConfig.from_dict(r.manifest.get("config"))
        del ev
    det = vstack(dets, metadata_conflicts="silent")
    truth = vstack(truths, metadata_conflicts="silent")
    out = {"field_dirs": [str(d) for d in field_dirs], "seeds": seeds, "area_deg2": area}

    # 1. numbers of selected clusters
    sel = _sel(det)
    matched = np.asarray(det["MATCHED"], bool)
    types, tcounts = np.unique(np.asarray(det["MATCH_TYPE"])[sel], return_counts=True)
    n_all, e_all = _per140(int(sel.sum()), area)
    n_m, e_m = _per140(int((sel & matched).sum()), area)
    out["selected"] = {
        "n": int(sel.sum()), "n_matched": int((sel & matched).sum()),
        "types": dict(zip(map(str, types), map(int, tcounts))),
        "per140": [n_all, e_all], "matched_per140": [n_m, e_m],
        "ratio_to_efeds": n_all / EFEDS_CANDIDATES,
        "matched_ratio_to_efeds": n_m / EFEDS_CANDIDATES,
        "matched_ratio_to_seed_sim": n_m / SEED_SIMULATION,
        "pass_efeds": bool(1 / 1.5 <= n_all / EFEDS_CANDIDATES <= 1.5),
        "pass_seed_sim": bool(1 / 1.5 <= n_m / SEED_SIMULATION <= 1.5),
    }
    s = det[sel & matched]
    m = np.asarray(s["M500c"], float)
    z = np.asarray(s["z"], float)
    out["selected"]["median_z"] = float(np.median(z))
    out["selected"]["median_log10M"] = float(np.median(np.log10(m)))
    out["selected"]["log10M_16_84"] = [float(v) for v in np.percentile(np.log10(m), [16, 84])]

    # 3. background measured by the detection vs the real spectrum
    vign = survey.band_vignetting(config)
    texp_unvign = np.asarray(det["ML_EXP"], float) / vign
    bkg_rate = np.asarray(det["ML_BKG"], float) / texp_unvign      # ct/s/arcmin^2
    bs = background_spectrum()
    real = bs["rate_per_arcmin2"](config.emin, config.emax)
    good = np.isfinite(bkg_rate) & (texp_unvign > 0.5 * config.exposure_mean)
    med = float(np.median(bkg_rate[good]))
    out["background"] = {
        "real_rate_ct_s_arcmin2": real, "measured_median": med,
        "measured_16_84": [float(v) for v in np.percentile(bkg_rate[good], [16, 84])],
        "ratio": med / real, "counts_per_arcmin2_at_2200s": med * config.exposure_mean,
        "real_counts_per_arcmin2_at_2200s": real * config.exposure_mean,
        "model_smooth_level": float(survey.background_rate(config)),
        "pass": bool(abs(med / real - 1) <= 0.10), "n_detections": int(good.sum()),
    }

    # 4. count rate per unit flux from the photons vs the package's ECF
    tz = np.asarray(truth["z"], float)
    tt = np.asarray(truth["T"], float)
    flux_tot = np.asarray(truth["FLUX_TOT"], float)
    expo = np.asarray(truth["EXPOSURE"], float)
    nph = np.asarray(truth["n_photons_file"], float)
    bright = (nph >= 100) & (expo > 0.5 * config.exposure_mean) & (tz >= 0.02) & (tz <= 1.2)
    # photons / (exposure x survey vignetting) = on-axis rate of the whole emission
    cr_onaxis = nph[bright] / (expo[bright] * vign)
    ecf_val = ecf.ecf(tz[bright], kT=tt[bright], nh=config.nh_gal)
    ecf_val = np.asarray(getattr(ecf_val, "value", ecf_val), float)
    ratio = cr_onaxis * ecf_val / flux_tot[bright]
    # Poisson-weighted mean ratio and its error
    w = nph[bright]
    mean_ratio = float(np.sum(ratio * w) / np.sum(w))
    err = float(np.sqrt(np.sum(w * (ratio - mean_ratio) ** 2) / np.sum(w) / max(len(w) - 1, 1)))
    kt_bins = [(0, 2), (2, 4), (4, 20)]
    by_kt = {}
    for lo, hi in kt_bins:
        k = (tt[bright] >= lo) & (tt[bright] < hi)
        if k.sum() >= 3:
            by_kt[f"{lo}-{hi} keV"] = [float(np.median(ratio[k])), int(k.sum())]
    out["count_rate_per_flux"] = {
        "n_clusters": int(bright.sum()), "mean_ratio_sim_over_ecf": mean_ratio,
        "error": err, "median_ratio": float(np.median(ratio)), "by_kT": by_kt,
        "survey_vignetting": vign, "pass": bool(abs(mean_ratio - 1) <= 0.10),
    }

    # 5. scatter of L-M (truth) and of the measured count rate at fixed M, z
    lm = np.log10(np.asarray(truth["M500c"], float))
    llx = np.log10(np.asarray(truth["LX"], float))
    ez = np.log10(config.cosmology.efunc(tz))
    sc_lx, coef_lx = _fit_residual_scatter(llx, lm, ez)
    lrate = np.log10(np.asarray(s["ML_RATE"], float))
    sz = np.asarray(s["z"], float)
    okr = np.isfinite(lrate)
    sc_cr, coef_cr = _fit_residual_scatter(lrate[okr], np.log10(m[okr]), np.log10(sz[okr]))
    out["scatter"] = {
        "LX_M_dex": sc_lx, "LX_M_fit": [float(c) for c in coef_lx], "n_halos": int(len(lm)),
        "input_lx_scatter_dex": config.lx_scatter_dex,
        "ML_RATE_at_fixed_M_z_dex": sc_cr, "ML_RATE_fit": [float(c) for c in coef_cr],
        "n_selected": int(okr.sum()),
    }

    # 6. number counts of the simulated halos (all, before any detection) by flux
    out["halo_number_counts_per_deg2"] = halo_number_counts(truth, area)

    if stamps_dir:
        out["stamps"] = measure_stamps(stamps_dir)
        out["field_as_stamps"] = field_like_stamps(det, truth, boxes, config,
                                                   out["stamps"]["log10_mmin"])
    return out, s


MASS_BINS = (13.3, 13.6, 13.9, 14.2, 14.5, 16.0)
# Collins et al. (1997, ApJ 479, L117): 2.0 (+0.4 -0.3) clusters per deg^2 above
# 3.9e-14 erg/s/cm^2 (0.5-2 keV) in 17.2 deg^2 of ROSAT PSPC pointings, of which they
# confirmed 15 spectroscopically at 0.3 < z < 0.7 (0.87 +- 0.23 per deg^2, a lower limit)
COLLINS97 = (3.9e-14, 2.0, 0.3, 0.4)
COLLINS97_Z03_07 = (15, 17.2)


def halo_number_counts(truth, area, fluxes=(1e-14, 2e-14, COLLINS97[0], 1e-13)):
    """N(>S) per deg^2 of the simulated halos: ``FLUX`` (0.5-2 keV, within R500c, rest
    band) and ``FLUX_TOT`` (all the emission), at the fluxes ``fluxes`` [erg/s/cm^2]."""
    out = {}
    for col in ("FLUX", "FLUX_TOT"):
        f = np.asarray(truth[col], float)
        out[col] = {f"{s:g}": float((f > s).sum() / area) for s in fluxes}
    out["collins97_above_3.9e-14"] = list(COLLINS97[1:])
    if "z" in truth.colnames:
        z = np.asarray(truth["z"], float)
        f = np.asarray(truth["FLUX_TOT"], float)
        n = int(((f > COLLINS97[0]) & (z > 0.3) & (z < 0.7)).sum())
        nc, ac = COLLINS97_Z03_07
        out["above_3.9e-14_z0.3-0.7"] = [n / area, np.sqrt(max(n, 1)) / area]
        out["collins97_above_3.9e-14_z0.3-0.7"] = [nc / ac, np.sqrt(nc) / ac]
    return out


def _efficiency(lm, selected, bins=MASS_BINS):
    """Selected fraction per bin of log10 M500c: {"lo-hi": [fraction, selected, halos]}."""
    out = {}
    for lo, hi in zip(bins[:-1], bins[1:]):
        k = (lm >= lo) & (lm < hi)
        out[f"{lo}-{hi}"] = [float(selected[k].mean()) if k.any() else float("nan"),
                             int(selected[k].sum()), int(k.sum())]
    return out


def field_like_stamps(det, truth, boxes, config, log10_mmin, margin=0.5):
    """The field's selection restricted to the halos a stamps run would simulate as
    centres: log10 M500c >= the stamps' ``log10_mmin``, at least ``stamp_min_counts``
    expected counts at the mean exposure, and at least ``margin`` deg inside the field
    box (stamps take their exposure from there, away from the tapered edges). Returns
    the matched and selected ones per 140 deg^2 of that inner area and the selected
    fraction per mass bin, to set against `measure_stamps`."""
    expo = np.asarray(truth["EXPOSURE"], float)
    rate = np.where(expo > 0, np.asarray(truth["counts_exp"], float) / np.maximum(expo, 1e-9), 0.0)
    lm = np.log10(np.asarray(truth["M500c"], float))
    ra, dec = np.asarray(truth["RA"], float), np.asarray(truth["DEC"], float)
    real = np.asarray(truth["realisation"]).astype(str)
    inner = np.zeros(len(truth), bool)
    area = 0.0
    for name, ((r0, r1), (d0, d1)) in boxes.items():
        lo, hi = d0 + margin, d1 - margin
        dra = margin / np.cos(np.radians(0.5 * (d0 + d1)))      # margin in RA degrees
        # area of the inner box [deg^2] = d(RA) [deg] x (sin hi - sin lo) x 180/pi
        if r1 - r0 <= 2 * dra or hi <= lo:
            continue                                            # no inner box
        area += (r1 - r0 - 2 * dra) * np.degrees(np.sin(np.radians(hi)) - np.sin(np.radians(lo)))
        inner |= (real == name) & (dec > lo) & (dec < hi) & (ra > r0 + dra) & (ra < r1 - dra)
    pre = (rate * config.exposure_mean >= config.stamp_min_counts) & (lm >= log10_mmin) & inner
    sel = _sel(det) & np.asarray(det["MATCHED"], bool)
    key = lambda t: np.char.add(np.asarray(t["realisation"]).astype(str),  # noqa: E731
                                np.asarray(t["HALO_ID"]).astype(str))
    hit = np.isin(key(truth), key(det[sel]))
    n140, e140 = _per140(int((hit & pre).sum()), area) if area > 0 else (float("nan"),) * 2
    return {"log10_mmin": float(log10_mmin), "margin_deg": margin, "inner_area_deg2": area,
            "halos": int(pre.sum()),
            "selected_matched": int((hit & pre).sum()), "per140": [n140, e140],
            "efficiency_by_log10M": _efficiency(lm[pre], hit[pre])}


def measure_stamps(outdir):
    """Selected central clusters per 140 deg^2 of a stamps-mode run (finished chunks)."""
    import yaml
    from astropy.table import Table, vstack

    man = yaml.safe_load(open(os.path.join(outdir, "manifest.yaml")))
    dets = sorted(glob.glob(os.path.join(outdir, "detections_c*.fits")))
    truths = sorted(glob.glob(os.path.join(outdir, "truth_c*.fits")))
    n = min(len(dets), len(truths))
    det = vstack([Table.read(f) for f in dets[:n]], metadata_conflicts="silent")
    tr = vstack([Table.read(f) for f in truths[:n]], metadata_conflicts="silent")
    central = np.asarray(tr["central"], bool)
    central_stamps = int(central.sum())
    # the virtual area per stamp: the run's area over the stamps it holds in all
    n_all = man.get("n_stamps") or man["n_halos_requested"]
    area = man["area_deg2"] * central_stamps / n_all
    cen = np.asarray(np.ma.filled(np.ma.asarray(det["central"]), False), bool)
    sel = _sel(det) & np.asarray(det["MATCHED"], bool) & cen
    n140, e140 = _per140(int(sel.sum()), area)
    hit = np.isin(np.asarray(tr["HALO_ID"])[central], np.asarray(det["HALO_ID"])[sel])
    lm = np.log10(np.asarray(tr["M500c"], float)[central])
    return {"dir": outdir, "chunks": n, "virtual_area_deg2": area,
            "log10_mmin": man["config"]["log10_mmin"], "selected_central": int(sel.sum()),
            "per140": [n140, e140], "stamps": central_stamps,
            "efficiency_by_log10M": _efficiency(lm, hit)}


def plot(s, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(s["M500c"], float)
    z = np.asarray(s["z"], float)
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.6))
    ax[0].scatter(z, m, s=8, c="C0")
    ax[0].set_yscale("log")
    ax[0].set_xlabel("redshift z")
    ax[0].set_ylabel(r"true $M_{500c}$ [$M_\odot$]")
    ax[0].set_title("selected simulated clusters")
    ax[1].hist(z, bins=np.arange(0, 1.35, 0.1), color="C0")
    ax[1].axvline(np.median(z), color="k", ls="--", label=f"median {np.median(z):.2f}")
    ax[1].axvline(0.35, color="C3", ls=":", label="seed 000: ~0.35")
    ax[1].set_xlabel("redshift z")
    ax[1].set_ylabel("clusters")
    ax[1].legend(fontsize=8)
    ax[2].hist(np.log10(m), bins=np.arange(13.0, 15.3, 0.1), color="C0")
    ax[2].set_xlabel(r"$\log_{10} M_{500c}/M_\odot$")
    ax[2].set_ylabel("clusters")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def background_decomposition(workdir, area=9.0, seed=11):
    """What the background map collects: smooth photons, + AGN, + clusters.

    Simulates a field with uniform exposure (no modulation, stripes or taper) in
    ``workdir`` and builds the detection's background map (`detect._background_map`) on the
    central 1.5-degree square from subsets of the photons (by ``SRC_ID``); returns the
    median map level in counts per arcmin^2 for each subset.
    """
    import dataclasses

    from astro_clustermass.simulate import (
        SimConfig,
        detect,
        read_realisation,
        simulate_field,
        survey,
    )

    cfg = dataclasses.replace(SimConfig(), exposure_model="gaussian", exposure_rms=0.0,
                              exposure_stripe=0.0,
                              exposure_edge_deg=0.0)
    simulate_field(workdir, area=area, seed=seed, config=cfg, overwrite=True, progress=False)
    r = read_realisation(workdir)
    ra = np.asarray(r.events["RA"], float)
    dec = np.asarray(r.events["DEC"], float)
    sid = np.asarray(r.events["SRC_ID"])
    ra0, dec0 = r.manifest["center_deg"]
    half = 0.75 * 3600.0
    x, y = survey.radec_to_offsets(ra0, dec0, ra, dec)
    npx = int(np.ceil(2 * half / cfg.pixel))
    h = npx * cfg.pixel / 2
    edges = np.linspace(-h, h, npx + 1)
    inner = slice(npx // 8, npx - npx // 8)
    per_arcmin2 = 3600.0 / cfg.pixel ** 2
    out = {"area_deg2": area, "seed": seed, "exposure_s": cfg.exposure_mean}
    for name, keep in (("smooth", sid == 0), ("smooth+agn", sid <= 0),
                       ("smooth+clusters", sid >= 0), ("all", np.ones(sid.size, bool))):
        img, _, _ = np.histogram2d(y[keep], x[keep], bins=(edges, edges))
        bkg = detect._background_map(img, np.full(img.shape, cfg.exposure_mean), cfg)
        out[name] = float(np.median(bkg[inner, inner]) * per_arcmin2)
        out[name + "_photons"] = float(img[inner, inner].mean() * per_arcmin2)
    return out


CTS_EDGES = (20, 40, 80, 160, 320, np.inf)
# the real eSASS list beside the repository (read-only shared inputs)
REAL_ERMLDET_LIST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                 os.pardir, "shared", "data", "erosita",
                                 "edr_300003_ermldet_MaxLikSourceList.fits.gz")


def _extended_fraction(cts, ext_like, det_like, edges=CTS_EDGES):
    """{"lo-hi": [fraction with EXT_LIKE > 6, number]} of DET_LIKE > 5 detections per
    ML_CTS bin."""
    cts, ext_like, det_like = (np.asarray(a, float) for a in (cts, ext_like, det_like))
    out = {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        k = (det_like > 5) & (cts >= lo) & (cts < hi)
        out[f"{lo:g}-{hi:g}"] = [float(np.mean(ext_like[k] > 6)) if k.any() else None,
                                 int(k.sum())]
    return out


def agn_contamination(field_dir, radius=60.0, max_rows=600, seed=0):
    """Selected AGN detections: which photons lie within ``radius`` arcsec.

    For the selected (EXT_LIKE > 6 & DET_LIKE > 5) detections matched to an AGN, and for
    point-like (EXT_LIKE <= 6, DET_LIKE > 5) AGN detections with ML_CTS within the 16-84 %
    range of the selected ones (at most ``max_rows`` of each, drawn at random), the median
    share of the photons within ``radius`` coming from the matched AGN, other AGN,
    clusters and the smooth background (by ``SRC_ID``), and the fraction of detections
    where other AGN or clusters give more than 20 % of them; and how many selected AGN
    detections are a second detection of an AGN detected again elsewhere (more strongly).
    """
    from astro_clustermass.simulate import read_realisation

    r = read_realisation(field_dir)
    out = {"field_dir": str(field_dir)}
    out.update(agn_photon_shares(r.detections, r.events, radius, max_rows, seed))
    return out


def agn_photon_shares(det, ev, radius=60.0, max_rows=600, seed=0):
    """`agn_contamination` on a detection table and an event table (``RA``, ``DEC``,
    ``SRC_ID``)."""
    from scipy.spatial import cKDTree

    from astro_clustermass.simulate.match import unit_vectors

    src = np.asarray(ev["SRC_ID"])
    tree = cKDTree(unit_vectors(np.asarray(ev["RA"], float), np.asarray(ev["DEC"], float)))
    agn = np.asarray(det["MATCH_TYPE"]).astype(str) == "agn"
    sel = _sel(det)
    cts = np.asarray(det["ML_CTS"], float)
    lo, hi = np.percentile(cts[agn & sel], [16, 84]) if (agn & sel).any() else (np.inf,) * 2
    groups = {"selected_agn": agn & sel,
              "pointlike_agn": agn & (np.asarray(det["EXT_LIKE"], float) <= 6)
              & (np.asarray(det["DET_LIKE"], float) > 5) & (cts >= lo) & (cts <= hi)}
    rng = np.random.default_rng(seed)
    rad = np.radians(radius / 3600.0)
    out = {"radius_arcsec": radius, "ml_cts_16_84_selected": [float(lo), float(hi)]}
    for name, m in groups.items():
        idx = np.flatnonzero(m)
        n_all = idx.size
        if idx.size > max_rows:
            idx = rng.choice(idx, max_rows, replace=False)
        shares = []
        pos = unit_vectors(np.asarray(det["RA"], float)[idx], np.asarray(det["DEC"], float)[idx])
        for i, p in zip(idx, pos):
            s = src[tree.query_ball_point(p, rad)]
            own = -abs(int(det["AGN_ID"][i]))
            shares.append([np.mean(s == own), np.mean((s < 0) & (s != own)), np.mean(s > 0),
                           np.mean(s == 0)])
        shares = np.array(shares).reshape(-1, 4)
        out[name] = {
            "n": int(n_all), "n_used": int(idx.size),
            "median_ml_cts": float(np.median(cts[idx])) if idx.size else None,
            "median_share": dict(zip(("own_agn", "other_agn", "clusters", "background"),
                                     map(float, np.median(shares, 0)))) if idx.size else None,
            "frac_other_agn_over_20pc": float(np.mean(shares[:, 1] > 0.2)) if idx.size else None,
            "frac_clusters_over_20pc": float(np.mean(shares[:, 2] > 0.2)) if idx.size else None,
        }
    # the same AGN detected twice: a point detection and an extended one in its wings
    aid = np.abs(np.asarray(det["AGN_ID"]))
    dl = np.asarray(det["DET_LIKE"], float)
    twice = stronger = 0
    for i in np.flatnonzero(agn & sel):
        other = np.flatnonzero(agn & (aid == aid[i]))
        other = other[other != i]
        twice += other.size > 0
        stronger += bool((dl[other] > dl[i]).any())
    out["selected_agn"]["same_agn_detected_again"] = int(twice)
    out["selected_agn"]["same_agn_detected_again_stronger"] = int(stronger)
    mt = np.asarray(det["MATCH_TYPE"]).astype(str)
    out["extended_fraction_sim"] = {
        t: _extended_fraction(cts[mt == t], det["EXT_LIKE"][mt == t], det["DET_LIKE"][mt == t])
        for t in ("agn", "cluster")}
    return out


def real_extended_fraction(path=None):
    """Extended fraction per ML_CTS bin in the real eSASS ermldet list (merged
    instruments, summed band), with its median ML_BKG [counts/arcmin^2]."""
    from astropy.table import Table

    path = path or REAL_ERMLDET_LIST
    t = Table.read(path, hdu="SRCLIST")
    t = t[(np.asarray(t["ID_INST"]) == 0) & (np.asarray(t["ID_BAND"]) == 0)]
    return {"file": os.path.basename(path), "n_sources": len(t),
            "median_ml_bkg": float(np.median(np.asarray(t["ML_BKG"], float))),
            "extended_fraction": _extended_fraction(t["ML_CTS"], t["EXT_LIKE"], t["DET_LIKE"])}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fields", nargs="+", help="field-mode realisation directories")
    ap.add_argument("--stamps", help="a stamps-mode output directory to compare")
    ap.add_argument("--static", default=None, help="write the plot here (docs/_static)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--decompose", metavar="DIR", default=None,
                    help="also simulate a 9 deg^2 field of uniform exposure in DIR and split "
                         "the background map into smooth, AGN and cluster photons")
    ap.add_argument("--contamination", action="store_true",
                    help="also decompose the selected AGN detections of the first field by "
                         "photon origin and compare extended fractions with the real "
                         "eSASS list")
    ap.add_argument("--real-list", default=None,
                    help="the real ermldet list (default: ../shared/data/erosita/...)")
    args = ap.parse_args(argv)
    out, s = measure(args.fields, args.stamps)
    if args.contamination:
        out["agn_contamination"] = agn_contamination(args.fields[0])
        if args.real_list or os.path.exists(REAL_ERMLDET_LIST):
            out["real_ermldet"] = real_extended_fraction(args.real_list)
    if args.decompose:
        out["background_decomposition"] = background_decomposition(args.decompose)
    out["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    out["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    if args.static:
        os.makedirs(args.static, exist_ok=True)
        plot(s, os.path.join(args.static, "sim_realism_mz.png"))
    text = json.dumps(out, indent=1, default=float)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
