#!/usr/bin/env python
"""Why the simulated sky differs from the real eFEDS catalogue (docs/validation.rst, issue 21).

Diagnostics behind "The simulated sky against the real eFEDS catalogue":

1. ``rate``: the simulator's 0.2-2.3 keV count rate per unit rest-frame 0.5-2 keV flux
   (its spectral tables: thermal spectrum, K-correction, Galactic absorption, ARF) against
   the package's independent folding of the eFEDS ARF (`astro_clustermass.xray.ecf`), per
   redshift and temperature;
2. ``fields DIR...``: on field realisations, per redshift bin, the selected clusters per
   deg^2 (all, and with ML_RATE > 0.06 ct/s where the selection is nearly complete) and
   their median EXT against the real catalogue; ML_RATE over the true on-axis rate of all
   the emission (the ML fit's flux); L(< 500 kpc) / L(< R500) of the simulated profiles
   (the aperture of Liu et al.'s luminosities); EXT over the true core radius for
   clusters with and without a cool core, and the cool-core fraction of the selected;
3. ``chiu DIR...``: the selected clusters per deg^2 and redshift bin if the halos had the
   L_X of Chiu et al. (2022; A = 3.36e43 erg/s at 1.4e14 h^-1 Msun with h = 0.7, B = 1.44,
   F = -0.07, E(z)^2, G = -0.51, z_p = 0.35) with their simulated residuals: the
   simulation's own probability of selection per expected counts (30 log bins) and
   redshift bin, applied to the expected counts scaled by the ratio of the luminosities
   (an estimate that ignores the change of the extents);
4. ``nearby DIR...``: per redshift bin, the selected clusters per deg^2 in bins of
   ML_RATE, their median EXT, EXT_LIKE and DET_LIKE - EXT_LIKE (about the point-source
   likelihood), real (secure clusters) against simulated; and the selected sources'
   DET_LIKE - EXT_LIKE at EXT_LIKE < 10 with the share of DET_LIKE < 15;
5. ``lumfun DIR... --liu PATH``: per redshift bin, the number per deg^2 above a luminosity
   (rest-frame 0.5-2 keV): real secure clusters with Liu et al.'s (2022) L_500kpc (their
   table ``efeds_xray_cluster_candidates.csv``, in ``shared/data/efeds``; not shipped)
   against all simulated halos and the selected ones, with the simulated L_X(< R500)
   times 10^-0.03 for the 500 kpc aperture (the ``fields`` diagnostic);
6. ``boxlike DIR... [--thresholds 5,6,7,8]``: on realisations run without the point-like
   peak requirement (``--set det_box_like_min=0``), the selection as if it had each
   threshold: density ratio, DET_LIKE < 15 share, DET_LIKE - EXT_LIKE at EXT_LIKE < 10,
   and the EXT and redshift medians against eFEDS;
7. ``variance``: the sample variance of the number of halos of 10^13.8 Msun at
   z = 0.05-0.2 in an eFEDS-sized field (16 x 9 deg, a box of the comoving size at the
   volume-weighted distance; linear power spectrum and Tinker et al. 2010 bias, colossus);
8. ``extent``: the detection's EXT on synthetic isolated beta = 2/3 clusters (200 photons,
   core 15, 30, 50", flat eFEDS background; 8 patches each), with the neighbour-model
   threshold ``det_model_min_dlnl`` at 2 (before 2026-12-06) and 5, and for the isolated
   fit alone;
9. ``completeness DIR... [--zmax 0.2] [--ext-like 6]``: for the halos at z < zmax, the
   completeness of the extended selection (a matched detection with EXT_LIKE > ext-like
   and DET_LIKE > 5) and of any detection (DET_LIKE > 5) per bin of S500 (observed-frame
   0.5-2 keV flux within R500: the truth's rest-frame FLUX times the K-correction of the
   simulator's own thermal spectrum, `kcorrection`), with the completeness of the
   angularly compact and extended halves (core radius) of each bin; per bin of M500c;
   the flux and expected counts of 50 % completeness (a logistic fit in log S500), and
   that flux moved to a shallower survey under the two limits (counts-limited: S x t_ratio,
   background-limited: S x t_ratio^0.5), for comparison with Marini et al. (2024, A&A 689,
   A7; eRASS:4 depth, ~600 s);
10. ``grouplx [DIR...]``: the simulator's mean L_X(0.5-2 keV, < R500c) at M500c =
    10^13.3-14.5, z = 0.1, against published L_X-M from stacks of optically selected
    groups and galaxies (read from abstracts; the assumptions are named in the output),
    with the band ratio of its own spectrum and colossus mass conversions; with field
    directories, the selected clusters per deg^2 and redshift bin if the halos had Zhang
    et al.'s (2024) relation (the ``chiu`` estimate, `reselect`).

Usage::

    python benchmarks/realism_causes.py rate
    python benchmarks/realism_causes.py fields /work/sim_output/i21/base_2101 ...
    python benchmarks/realism_causes.py chiu /work/sim_output/i21/cal_a
    python benchmarks/realism_causes.py nearby /work/sim_output/i21b/ref_3101 ...
    python benchmarks/realism_causes.py lumfun /work/sim_output/i21b/ref_3101 ... \
        --liu ../shared/data/efeds/efeds_xray_cluster_candidates.csv
    python benchmarks/realism_causes.py boxlike /work/sim_output/i21b/rc20ccB_3101
    python benchmarks/realism_causes.py variance
    python benchmarks/realism_causes.py extent
    python benchmarks/realism_causes.py completeness /work/sim_output/i21b/f40_2101 ...
    python benchmarks/realism_causes.py grouplx /work/sim_output/i21b/f40_2101 ...
    python benchmarks/realism_causes.py zcut /work/sim_output/i21b/f40_2101 ...
    python benchmarks/realism_causes.py profiles /work/sim_output/i21b/f40_2101 ...
    python benchmarks/realism_causes.py extentmix /work/sim_output/i21b/f40_2101 ...
"""

from __future__ import annotations

import argparse

import numpy as np

Z_BINS = ((0.0, 0.2), (0.2, 0.35), (0.35, 0.5), (0.5, 0.8), (0.8, 1.3))
#: upper redshift of the "nearby" groups whose excess issue 21 traces (completeness)
NEAR_Z = 0.15


def rate_table():
    from astro_clustermass.simulate import spectra
    from astro_clustermass.simulate.config import DEFAULT_CONFIG as C
    from astro_clustermass.xray import ecf

    tab = spectra._cluster_tables(C)
    zs = (0.12, 0.275, 0.425, 0.6)
    print("log10(counts/s per erg/s/cm^2), simulator / package ECF, z =", zs)
    for kt in (1.5, 3.0, 5.0):
        sim = [np.log10(float(tab.counts_per_flux(kt, z, "onaxis"))) for z in zs]
        pkg = []
        for z in zs:
            e = ecf.ecf(z, kT=kt, nh=C.nh_gal)
            pkg.append(-np.log10(float(np.asarray(getattr(e, "value", e)))))
        print(f"  kT = {kt:3.1f} keV: " + "  ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(sim, pkg)))


def _v(tab, col):
    return np.asarray(getattr(tab[col], "value", tab[col]), float)


def _selected_halos(truth, det, ext_like_min=6.0, det_like_min=5.0):
    """Per halo of ``truth``: selected (a matched detection with EXT_LIKE > ext_like_min and
    DET_LIKE > det_like_min), and detected (a matched detection with DET_LIKE > det_like_min)."""
    from astro_clustermass.simulate import realism

    ids, hid = np.asarray(det["HALO_ID"]), np.asarray(truth["HALO_ID"])
    matched = np.asarray(det["MATCHED"], bool)
    sel = matched & realism.selected(det, ext_like_min, det_like_min)
    found = matched & (_v(det, "DET_LIKE") > det_like_min)
    return np.isin(hid, ids[sel]), np.isin(hid, ids[found])


def fields(dirs):
    from astro_clustermass.simulate import emission, read_realisation, realism
    from astro_clustermass.simulate.config import SimConfig

    real = realism.read_efeds_clusters()
    secure = ~np.asarray(real["NOT_CLUSTER"], bool)
    rz, rext, rrate = _v(real, "z"), _v(real, "EXT"), _v(real, "ML_RATE")
    dets, area = [], 0.0
    for d in dirs:
        r = read_realisation(d)
        dets.append(r.detections)
        area += float(r.manifest["area_deg2"])
        config = SimConfig.from_dict(r.manifest.get("config"))

    def cat(col):
        return np.concatenate([_v(d, col) for d in dets])

    sel = np.concatenate([realism.selected(d) & np.asarray(d["MATCHED"], bool) for d in dets])
    z, ext, rate = cat("z"), cat("EXT"), cat("ML_RATE")
    cc = np.concatenate([np.asarray(d["cool_core"]).astype(bool) for d in dets])
    props = {k: cat(k) for k in ("rc", "beta", "rc_cc", "f_cc")}
    frac_r500 = emission.flux_fraction_r500(props, config)
    rc_true = props["rc"] * cat("R500c_arcmin") * 60.0
    x500 = 500.0 / cat("R500c_kpc")

    def frac(x):
        xt = config.r_trunc
        return ((1 - props["f_cc"]) * emission.beta_cdf(x, props["rc"], props["beta"], xt)
                + props["f_cc"] * emission.beta_cdf(x, props["rc_cc"], props["beta"], xt))

    aperture = frac(x500) / frac(np.ones_like(x500))
    fit_flux = rate / (cat("CR_true") / frac_r500)
    print(f"{len(dirs)} field(s), {area:.0f} deg^2; real eFEDS 140 deg^2 (secure clusters)")
    print("z bin       real: n/deg2 (ML_RATE>0.06) EXT | sim: n/deg2 (ML_RATE>0.06) EXT  "
          "log ML_RATE/rate_true  log L500kpc/LR500  EXT/rc nonCC CC")
    for lo, hi in Z_BINS:
        b = secure & (rz >= lo) & (rz < hi)
        s = sel & (z >= lo) & (z < hi)
        if not s.any():
            continue
        with np.errstate(invalid="ignore"):
            print(f"{lo:.2f}-{hi:.2f}  {b.sum() / 140:.2f} "
                  f"({(b & (rrate > 0.06)).sum() / 140:.2f}) "
                  f"{np.median(rext[b]):5.1f} | {s.sum() / area:.2f} "
                  f"({(s & (rate > 0.06)).sum() / area:.2f}) {np.median(ext[s]):5.1f}  "
                  f"{np.median(np.log10(fit_flux[s])):+.3f}  "
                  f"{np.median(np.log10(aperture[s])):+.3f}"
                  f"  {np.median(ext[s & ~cc] / rc_true[s & ~cc]):.2f} "
                  f"{np.median(ext[s & cc] / rc_true[s & cc]) if (s & cc).any() else np.nan:.2f}")
    print(f"cool-core fraction of the selected clusters: {cc[sel].mean():.2f} "
          f"(input {config.cc_fraction})")
    det = np.concatenate([np.asarray(d["MATCHED"], bool) & (_v(d, "DET_LIKE") > 5) for d in dets])
    print("detected (DET_LIKE > 5) clusters that pass EXT_LIKE > 6, per z bin: " + ", ".join(
        f"{(sel & (z >= lo) & (z < hi)).sum()}/{(det & (z >= lo) & (z < hi)).sum()}"
        for lo, hi in Z_BINS))


def reselect(dirs, lx_ratio, zb=(0.0, 0.2, 0.35, 0.5, 0.8, 1.3)):
    """Selected clusters per deg^2 and redshift bin, as simulated and if each halo's L_X were
    multiplied by ``lx_ratio(truth, config)``: the simulation's own probability of selection
    per expected counts (30 log bins) and redshift bin, applied to the scaled expected
    counts (an estimate that ignores the change of the extents). Returns (zb, before, after)."""
    from astro_clustermass.simulate import read_realisation
    from astro_clustermass.simulate.config import SimConfig

    zb = np.asarray(zb)
    rows, area = [], 0.0
    for d in dirs:
        r = read_realisation(d)
        t, det = r.truth, r.detections
        config = SimConfig.from_dict(r.manifest.get("config"))
        area += float(r.manifest["area_deg2"])
        cnt = _v(t, "counts_exp")
        rows.append((_selected_halos(t, det)[0], _v(t, "z"), cnt, cnt * lx_ratio(t, config)))
    s, z, cnt, cnt2 = (np.concatenate([r[k] for r in rows]) for k in range(4))
    before, after = reweighted_selection(s, z, cnt, cnt2, zb)
    return zb, before / area, after / area


def reweighted_selection(sel, z, counts, counts_new, zb, cb=np.geomspace(1, 1e4, 30)):
    """Per redshift bin ``zb``: the number of selected halos, and the expected number if the
    expected counts became ``counts_new``, each halo counting with the selected fraction of
    its (counts bin ``cb``, redshift bin) cell."""
    iz = np.digitize(z, zb)
    ic, ic2 = (np.clip(np.digitize(c, cb), 0, len(cb)) for c in (counts, counts_new))
    prob = np.zeros((len(cb) + 1, len(zb) + 1))
    for a in range(len(cb) + 1):
        for b in range(len(zb) + 1):
            k = (ic == a) & (iz == b)
            if k.any():
                prob[a, b] = sel[k].mean()
    p_new = prob[ic2, iz]
    return (np.array([sel[iz == b].sum() for b in range(1, len(zb))], float),
            np.array([p_new[iz == b].sum() for b in range(1, len(zb))]))


def _chiu_ratio(t, config):
    m, z, lx, dl = (_v(t, c) for c in ("M500c", "z", "LX", "dlogLX"))
    ez = config.cosmology.efunc(z) / config.cosmology.efunc(0.35)
    lnr = np.log((1 + z) / 1.35)
    l_chiu = 3.36e43 * (m / 2e14) ** (1.44 - 0.07 * lnr) * ez ** 2 * np.exp(-0.51 * lnr)
    return l_chiu * 10 ** dl / lx


def chiu(dirs):
    zb, before, after = reselect(dirs, _chiu_ratio)
    print("selected clusters per deg^2: simulated / with Chiu et al.'s L_X (estimate)")
    for b in range(1, len(zb)):
        print(f"  z {zb[b - 1]:.2f}-{zb[b]:.2f}: {before[b - 1]:.2f} / {after[b - 1]:.2f}")


def nearby(dirs):
    from astro_clustermass.simulate import read_realisation, realism

    real = realism.read_efeds_clusters()
    secure = ~np.asarray(real["NOT_CLUSTER"], bool)
    cols = ("z", "ML_RATE", "EXT", "EXT_LIKE", "DET_LIKE")
    rv = {c: _v(real, c) for c in cols}
    sv, allv, area, n_point = {c: [] for c in cols}, {c: [] for c in cols}, 0.0, 0
    for d in dirs:
        r = read_realisation(d)
        det = r.detections
        area += float(r.manifest["area_deg2"])
        sel = realism.selected(det)
        n_point += int(np.sum(np.asarray(det["MATCHED"], bool) & (_v(det, "DET_LIKE") > 6)
                              & (_v(det, "EXT_LIKE") <= 6)))
        for c in cols:
            sv[c].append(_v(det, c)[sel & np.asarray(det["MATCHED"], bool)])
            allv[c].append(_v(det, c)[sel])
    sv = {c: np.concatenate(x) for c, x in sv.items()}
    allv = {c: np.concatenate(x) for c, x in allv.items()}
    rb = (0.02, 0.06, 0.1, 0.2, 0.5, 5.0)
    print(f"{len(dirs)} field(s), {area:.0f} deg^2; clusters per deg^2 in ML_RATE bins {rb} ct/s,"
          " median EXT, EXT_LIKE, DET_LIKE - EXT_LIKE; real (secure) | simulated")
    for lo, hi in Z_BINS:
        out = []
        for v, k, a in ((rv, secure, 140.0), (sv, True, area)):
            b = k & (v["z"] >= lo) & (v["z"] < hi)
            h = np.histogram(v["ML_RATE"][b], rb)[0] / a
            out.append(" ".join(f"{x:.2f}" for x in h) + "  " + " ".join(
                f"{np.median(x):5.1f}" if b.any() else "  nan" for x in (
                    v["EXT"][b], v["EXT_LIKE"][b], (v["DET_LIKE"] - v["EXT_LIKE"])[b])))
        print(f"{lo:.2f}-{hi:.2f}  {out[0]} | {out[1]}")
    fine = (0.0, 0.1, 0.15, 0.2, 0.3)
    edges = list(zip(fine, fine[1:]))
    n_real = [np.sum(secure & (rv["z"] >= a) & (rv["z"] < b)) for a, b in edges]
    n_sim = [np.sum((sv["z"] >= a) & (sv["z"] < b)) * 140 / area for a, b in edges]
    print(f"clusters per 140 deg^2 in z bins {fine}: real "
          + " ".join(str(n) for n in n_real) + " | simulated "
          + " ".join(f"{n:.0f}" for n in n_sim))
    print(f"simulated clusters detected as point sources (DET_LIKE > 6, EXT_LIKE <= 6): "
          f"{n_point / area:.1f} per deg^2 (eFEDS: 346 optically confirmed in 140 deg^2, "
          "2.5 per deg^2, Bulbul et al. 2022)")
    for name, v in (("real", rv), ("simulated", allv)):
        low = v["EXT_LIKE"] < 10
        print(f"{name}: DET_LIKE - EXT_LIKE at EXT_LIKE < 10, 5/25/50 %: " + " / ".join(
            f"{q:.1f}" for q in np.percentile((v["DET_LIKE"] - v["EXT_LIKE"])[low], (5, 25, 50)))
            + f"; DET_LIKE < 15: {np.mean(v['DET_LIKE'] < 15):.3f} of the selected")


def lumfun(dirs, liu_path):
    from astropy.table import Table

    from astro_clustermass.simulate import read_realisation, realism

    real = realism.read_efeds_clusters()
    liu = Table.read(liu_path)
    secure = dict(zip(np.asarray(real["ID_SRC"]), ~np.asarray(real["NOT_CLUSTER"], bool)))
    zreal = dict(zip(np.asarray(real["ID_SRC"]), _v(real, "z")))
    keep = np.array([secure[i] for i in liu["ID_SRC"]])
    rz = np.array([zreal[i] for i in liu["ID_SRC"]])[keep]
    rl = np.asarray(liu["L_500kpc"], float)[keep]
    sz, sl, ssel, area = [], [], [], 0.0
    for d in dirs:
        r = read_realisation(d)
        t, det = r.truth, r.detections
        area += float(r.manifest["area_deg2"])
        sz.append(_v(t, "z"))
        sl.append(_v(t, "LX") * 10 ** -0.03)
        ssel.append(_selected_halos(t, det)[0])
    sz, sl, ssel = (np.concatenate(x) for x in (sz, sl, ssel))
    cuts = (1e42, 3e42, 1e43, 3e43, 1e44)
    print(f"N(> L_X) per deg^2, L_X in erg/s {cuts}: real secure (Liu et al. L_500kpc, "
          f"{keep.sum()} clusters, {np.sum(rl > 0)} with L) | simulated, all halos | "
          f"simulated, selected ({area:.0f} deg^2)")
    for lo, hi in Z_BINS[:3]:
        b, s = (rz >= lo) & (rz < hi), (sz >= lo) & (sz < hi)
        row = [" ".join(f"{np.sum(b & (rl > c)) / 140:.2f}" for c in cuts),
               " ".join(f"{np.sum(s & (sl > c)) / area:.2f}" for c in cuts),
               " ".join(f"{np.sum(s & ssel & (sl > c)) / area:.2f}" for c in cuts)]
        print(f"  z {lo:.2f}-{hi:.2f}: " + " | ".join(row))


def boxlike(dirs, thresholds):
    from astro_clustermass.simulate import read_realisation, realism

    tabs = []
    for d in dirs:
        r = read_realisation(d)
        tabs.append((r.detections, float(r.manifest["area_deg2"]), d))
    for thr in thresholds:
        cut = [(t[_v(t, "BOX_LIKE") >= thr], a, lab) for t, a, lab in tabs]
        res = realism.compare_with_efeds(cut)
        sel = np.concatenate([t[realism.selected(t)] for t, _, _ in cut])
        dl, el = _v(sel, "DET_LIKE"), _v(sel, "EXT_LIKE")
        q = np.percentile((dl - el)[el < 10], (5, 25, 50))
        o = res["observables"]
        print(f"BOX_LIKE >= {thr:g}: density {res['density']['ratio']:.2f} of eFEDS, "
              f"DET_LIKE < 15 {np.mean(dl < 15):.3f}, DET_LIKE - EXT_LIKE at EXT_LIKE < 10 "
              f"(5/25/50 %) {q[0]:.1f} / {q[1]:.1f} / {q[2]:.1f}, medians: DET_LIKE "
              f"{o['DET_LIKE']['median_diff']:+.3f}, EXT {o['EXT']['median_diff']:+.3f}, "
              f"z {o['z']['median_diff']:+.3f}")


def variance(logm=13.8, zlo=0.05, zhi=0.2, size_deg=(16.0, 9.0)):
    from colossus.cosmology import cosmology
    from colossus.lss import bias

    from astro_clustermass.simulate.config import DEFAULT_CONFIG as C

    cosmo = cosmology.setCosmology("sv", params=dict(flat=True, H0=C.H0, Om0=C.Om0, Ob0=C.Ob0,
                                                     sigma8=C.sigma8, ns=C.ns))
    d1, d2 = cosmo.comovingDistance(0, zlo), cosmo.comovingDistance(0, zhi)   # Mpc/h
    dm = ((d1 ** 3 + d2 ** 3) / 2) ** (1 / 3)
    lx, ly, lz = dm * np.radians(size_deg[0]), dm * np.radians(size_deg[1]), d2 - d1
    k = np.geomspace(1e-4, 5, 400)
    kk, mu, ph = np.meshgrid(k, np.linspace(0, 1, 60), np.linspace(0, np.pi / 2, 40),
                             indexing="ij")
    kp = kk * np.sqrt(1 - mu ** 2)
    w2 = (np.sinc(kp * np.cos(ph) * lx / 2 / np.pi) * np.sinc(kp * np.sin(ph) * ly / 2 / np.pi)
          * np.sinc(kk * mu * lz / 2 / np.pi)) ** 2
    zm = 0.5 * (zlo + zhi)
    pk = cosmo.matterPowerSpectrum(k, zm)
    sig = np.sqrt(np.trapezoid(pk * w2.mean(axis=(1, 2)) * k ** 2 / (2 * np.pi ** 2), k))
    b = bias.haloBias(10 ** logm * C.H0 / 100, z=zm, mdef="500c", model="tinker10")
    print(f"box {lx:.0f} x {ly:.0f} x {lz:.0f} Mpc/h: sigma_matter = {sig:.3f}, bias "
          f"(10^{logm} Msun, z = {zm:.3f}) = {b:.2f}, sample variance of the halo counts "
          f"= {sig * b:.3f}")


def extent(seed=5, n_patch=8):
    from astro_clustermass.simulate import detect, emission, mlfit
    from astro_clustermass.simulate.config import DEFAULT_CONFIG as C
    from astro_clustermass.simulate.instrument import sample_psf_offsets

    half = 900.0

    def flat(x, y):
        return np.full(np.shape(x), 2200.0)

    def isolated_run(self, config):
        f = self.isolated()
        p, s, a, _ = self.models(f)
        self.final_models = (p, s, a)
        return f

    variants = [("neighbour passes, det_model_min_dlnl = 2", {"det_model_min_dlnl": 2.0}, None),
                ("neighbour passes, det_model_min_dlnl = 5", {}, None),
                ("isolated fit only", {}, isolated_run)]
    for label, kw, run in variants:
        rng = np.random.default_rng(seed)
        orig = mlfit._SourceFits.run
        if run is not None:
            mlfit._SourceFits.run = run
        try:
            out = []
            for rc in (15.0, 30.0, 50.0):
                ext = []
                for _ in range(n_patch):
                    nb = rng.poisson(0.0028 * 2200 * (2 * half / 60) ** 2)
                    bx, by = rng.uniform(-half, half, nb), rng.uniform(-half, half, nb)
                    r500 = rc / 0.2
                    r = emission._beta_radii(rng, 200, rc / r500, 2 / 3, 2.0) * r500
                    phi = rng.random(200) * 2 * np.pi
                    px, py = sample_psf_offsets(rng, 200, C)
                    x = np.r_[bx, r * np.cos(phi) + px]
                    y = np.r_[by, r * np.sin(phi) + py]
                    d = detect.detect_patch(x, y, half, flat,
                                            C.replace(det_two_point=False, **kw), 0.53)
                    dd = np.hypot(d["x"], d["y"])
                    k = np.argmin(dd)
                    ext.append(d["EXT_FIT"][k] if dd[k] < 30 else np.nan)
                out.append(f"core {rc:.0f}\": {np.nanmedian(ext):.1f}")
        finally:
            mlfit._SourceFits.run = orig
        print(f"median EXT of isolated clusters, {label}: " + ", ".join(out))


def kcorrection(kT, z, config):
    """Observed-frame over rest-frame 0.5-2 keV energy flux of the simulator's thermal
    spectrum (continuum + Fe-L line, `astro_clustermass.simulate.spectra`; unabsorbed).

    Parameters
    ----------
    kT, z : array
        Temperatures [keV] and redshifts.
    config : SimConfig
        For the Fe-L line share.

    Returns
    -------
    array
        K = L(0.5 (1+z) - 2 (1+z) keV) / L(0.5-2 keV), both rest frame.
    """
    kT, z = np.broadcast_arrays(np.asarray(kT, float), np.asarray(z, float))
    return np.array([band_energy(t, 0.5 * (1 + zz), 2.0 * (1 + zz), config)
                     / band_energy(t, 0.5, 2.0, config)
                     for t, zz in zip(kT.ravel(), z.ravel())]).reshape(kT.shape)


def band_energy(kT, lo, hi, config):
    """Rest-frame energy emitted between ``lo`` and ``hi`` [keV] by the simulator's thermal
    spectrum of temperature ``kT`` [keV] (continuum + Fe-L line, unabsorbed; arbitrary
    normalisation: only ratios are meaningful)."""
    from astro_clustermass.simulate import spectra
    from astro_clustermass.xray import spectra as xspec

    e = np.linspace(lo, hi, 1501)
    lf = float(spectra.line_fraction(kT, config))
    return np.trapezoid(e * xspec.thermal_photon_spectrum(e, kT, lf), e)


#: published L_X-M read from abstracts only (docs/validation.rst, "Group luminosities
#: against stacked, optically selected measurements"); what the text read did not state is an
#: assumption named in ``grouplx``'s output
GROUP_LX = {
    "zhang24": dict(slope=1.35, icpt=23.8, point=(13.7, 9.2e41)),   # log L = a log M500c + b
    "zheng23": ((28.46, 1.024), (26.73, 1.140)),                    # L = 10^b M_h^a, 0.1-2.4 keV
    "rykoff08": dict(norm=12.6e42, piv=1e14, slope=1.65),           # h^-2 erg/s, h^-1 Msun
}


def grouplx(dirs=(), z=0.1, logms=(13.3, 13.5, 13.7, 14.0, 14.5)):
    """The simulator's L_X(0.5-2 keV, < R500c) against the published stacked (selection-
    independent) measurements, at M500c = 10^logms and redshift z (log10 erg/s)."""
    import dataclasses

    from colossus.cosmology import cosmology
    from colossus.halo import mass_adv

    from astro_clustermass.simulate.config import DEFAULT_CONFIG as C
    from astro_clustermass.simulate.emission import lx_mean, t_mean

    h = C.H0 / 100
    cosmology.setCosmology("sv", params=dict(flat=True, H0=C.H0, Om0=C.Om0, Ob0=C.Ob0,
                                             sigma8=C.sigma8, ns=C.ns))
    m = 10 ** np.asarray(logms)
    med = np.log10(lx_mean(m, z, C))
    mean = med + 0.5 * np.log(10) * C.lx_scatter_dex ** 2
    kt = t_mean(m, z, C)
    band = np.array([band_energy(t, 0.5, 2.0, C) / band_energy(t, 0.1, 2.4, C) for t in kt])

    def mdef(md):
        return np.array([mass_adv.changeMassDefinitionCModel(mm * h, z, "500c", md,
                                                              c_model="diemer19")[0] / h
                         for mm in m])

    m180m, m200m, m200c = mdef("180m"), mdef("200m"), mdef("200c")
    zh, ry = GROUP_LX["zhang24"], GROUP_LX["rykoff08"]
    rows = {"simulator median": med, "simulator mean (+0.5 ln10 sigma^2)": mean,
            "Zhang+24 fit (as 0.5-2 keV, < R500c)": zh["slope"] * np.asarray(logms) + zh["icpt"]}
    for i, (b, a) in enumerate(GROUP_LX["zheng23"]):
        lbl = f"Zheng+23 fit {i + 1} x band ratio"
        rows[lbl + " (h^-2 erg/s, M180m h^-1)"] = (b + a * np.log10(m180m * h)
                                                  - 2 * np.log10(h) + np.log10(band))
        rows[lbl + " (erg/s, M180m Msun)"] = b + a * np.log10(m180m) + np.log10(band)
    for lbl, mm in (("M200m", m200m), ("M200c", m200c)):
        rows[f"Rykoff+08 x band ratio ({lbl}, h^-2)"] = (
            np.log10(ry["norm"] / h ** 2 * band) + ry["slope"] * np.log10(mm * h / ry["piv"]))
    rows["Pratt+09 as published (M_X as true M)"] = (
        np.log10(lx_mean(m, z, dataclasses.replace(C, hse_bias=1.0)))
        + 0.5 * np.log(10) * C.lx_scatter_dex ** 2)
    print(f"z = {z}, h = {h:.4f}; log10 L_X [erg/s]; M500c -> M180m / M200m / M200c with "
          f"Diemer & Joyce (2019) concentrations (colossus)")
    print(f"{'log M500c':58s}" + "".join(f"{x:8.2f}" for x in logms))
    print(f"{'kT [keV] (simulator)':58s}" + "".join(f"{x:8.2f}" for x in kt))
    print(f"{'L(0.5-2) / L(0.1-2.4) of its spectrum':58s}"
          + "".join(f"{x:8.3f}" for x in band))
    print(f"{'log M180m [Msun]':58s}" + "".join(f"{x:8.2f}" for x in np.log10(m180m)))
    for k, v in rows.items():
        print(f"{k:58s}" + "".join(f"{x:8.2f}" for x in v))
    at = np.argmin(abs(np.asarray(logms) - zh["point"][0]))
    print(f"Zhang+24 quoted point: log L = {np.log10(zh['point'][1]):.2f} at log M500c = "
          f"{zh['point'][0]} (simulator mean at log M500c = {logms[at]}: {mean[at]:.2f})")
    for k in list(rows)[2:]:
        d = rows["simulator mean (+0.5 ln10 sigma^2)"] - rows[k]
        print(f"simulator mean - {k}: " + " ".join(f"{x:+.2f}" for x in d))
    if dirs:
        _zhang_reselect(dirs, z)


def _zhang_reselect(dirs, z_ref):
    """Estimate (`reselect`) of the selected clusters per redshift bin if the simulated
    L_X-M had Zhang et al.'s slope and normalisation (read as 0.5-2 keV, < R500c) at all
    masses, only below 10^13.7 Msun (their largest mass) or 1e14 Msun (extrapolated), and
    below 1e14 Msun through their quoted point at 10^13.7 instead of their fit; the
    simulator's evolution and residuals kept; against the real eFEDS secure clusters."""
    from astro_clustermass.simulate import realism
    from astro_clustermass.simulate.config import DEFAULT_CONFIG as C
    from astro_clustermass.simulate.emission import lx_mean

    zh = GROUP_LX["zhang24"]
    lm_pt, l_pt = zh["point"]
    to_point = np.log10(l_pt) - (zh["slope"] * lm_pt + zh["icpt"])
    variants = (("all masses", 0.0, np.inf), ("< 10^13.7", 0.0, 10 ** 13.7),
                ("< 1e14", 0.0, 1e14), ("< 1e14, through the point", to_point, 1e14))

    def ratio(t, offset, below):
        m = _v(t, "M500c")
        d = (zh["slope"] * np.log10(m) + zh["icpt"] + offset - np.log10(lx_mean(m, z_ref, C))
             - 0.5 * np.log(10) * C.lx_scatter_dex ** 2)
        return 10 ** np.where(m < below, d, 0.0)

    zb = (0.0, 0.1, 0.15, 0.2, 0.35, 0.5, 0.8, 1.3)
    runs = [reselect(dirs, lambda t, c, o=o, mm=mm: ratio(t, o, mm), zb) for _, o, mm in variants]
    real = realism.read_efeds_clusters()
    zr = _v(real, "z")[~np.asarray(real["NOT_CLUSTER"], bool)]
    print(f"selected clusters per deg^2 (estimate, {len(dirs)} field(s)): real eFEDS (secure, "
          f"140 deg^2) / simulated / with Zhang+24's L_X-M: "
          + " / ".join(v[0] for v in variants) + f" (point: {to_point:+.2f} dex)")
    for b in range(1, len(zb)):
        nr = np.sum((zr >= zb[b - 1]) & (zr < zb[b])) / 140.0
        print(f"  z {zb[b - 1]:.2f}-{zb[b]:.2f}: {nr:.3f} / {runs[0][1][b - 1]:.3f} / "
              + " / ".join(f"{r[2][b - 1]:.3f}" for r in runs))


def fifty_percent(x, flag):
    """Where a logistic ``1 / (1 + exp(-(x - x50) / w))`` fitted (unbinned maximum
    likelihood) to the 0/1 ``flag`` against ``x`` crosses 50 %: (x50, w)."""
    from scipy.optimize import minimize

    x, flag = np.asarray(x, float), np.asarray(flag, bool)

    def nll(p):
        q = np.clip(1 / (1 + np.exp(-(x - p[0]) / abs(p[1]))), 1e-9, 1 - 1e-9)
        return -np.sum(np.where(flag, np.log(q), np.log(1 - q)))

    res = minimize(nll, [np.median(x), 0.2], method="Nelder-Mead")
    return float(res.x[0]), float(abs(res.x[1]))


def completeness_rows(x, edges, flags):
    """Per bin [edges[i], edges[i+1]) of ``x``: the number of halos and, per boolean array
    in ``flags``, how many of them it marks (a list of (lo, hi, n, [k, ...]))."""
    x = np.asarray(x, float)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        b = (x >= lo) & (x < hi)
        out.append((lo, hi, int(b.sum()), [int(np.sum(f[b])) for f in flags]))
    return out


def completeness(dirs, zmax=0.2, ext_like_min=6.0):
    from astro_clustermass.simulate import read_realisation, realism
    from astro_clustermass.simulate.config import SimConfig

    cols = ("z", "M500c", "T", "FLUX", "counts_exp", "EXPOSURE", "rc", "R500c_arcmin", "CR_true")
    h = {c: [] for c in cols + ("sel", "det")}
    area, ml_exp, near_rate = 0.0, [], []
    for d in dirs:
        r = read_realisation(d)
        t, det = r.truth, r.detections
        config = SimConfig.from_dict(r.manifest.get("config"))
        area += float(r.manifest["area_deg2"])
        near = _v(t, "z") < zmax
        sel, found = _selected_halos(t, det, ext_like_min)
        for c in cols:
            h[c].append(_v(t, c)[near])
        h["sel"].append(sel[near])
        h["det"].append(found[near])
        ml_exp.append(_v(det, "ML_EXP")[np.asarray(det["MATCHED"], bool)])
        k = realism.selected(det) & np.asarray(det["MATCHED"], bool) & (_v(det, "z") < NEAR_Z)
        near_rate.append(_v(det, "ML_RATE")[k])
    h = {c: np.concatenate(v) for c, v in h.items()}
    kc = kcorrection(h["T"], h["z"], config)
    s500 = h["FLUX"] * kc
    rc = h["rc"] * h["R500c_arcmin"] * 60.0               # non-cool-core core radius [arcsec]
    t_unvig, t_vig = np.median(h["EXPOSURE"]), np.median(np.concatenate(ml_exp))
    print(f"{len(dirs)} field(s), {area:.0f} deg^2: {h['z'].size} halos (M500c >= 1e13 Msun) "
          f"at z < {zmax}; extended = matched detection with EXT_LIKE > {ext_like_min:g} & "
          f"DET_LIKE > 5, detected = matched with DET_LIKE > 5")
    print(f"S500 = FLUX (rest 0.5-2 keV, < R500) x K, K = observed/rest 0.5-2 keV flux of the "
          f"simulator's spectrum: median {np.median(kc):.3f} (5-95 %: "
          f"{np.percentile(kc, 5):.3f}-{np.percentile(kc, 95):.3f})")
    print(f"depth: median exposure at the halos {t_unvig:.0f} s unvignetted, median ML_EXP of "
          f"the matched detections {t_vig:.0f} s (vignetted)")
    fb = np.arange(-14.5, -11.49, 0.25)
    print("log S500 [erg/s/cm^2]   N   extended        detected        extended: compact / "
          "wide half (core radius)   median counts_exp")
    for lo, hi, n, (ks, kd) in completeness_rows(np.log10(s500), fb, (h["sel"], h["det"])):
        if n == 0:
            continue
        b = (np.log10(s500) >= lo) & (np.log10(s500) < hi)
        small = b & (rc <= np.median(rc[b]))
        wide = b & ~small
        print(f"  {lo:6.2f} - {hi:6.2f} {n:4d}  {ks:3d} ({ks / n:4.2f})  {kd:3d} ({kd / n:4.2f})"
              f"   {h['sel'][small].mean():4.2f} ({np.median(rc[small]):4.0f}\") / "
              f"{h['sel'][wide].mean() if wide.any() else np.nan:4.2f} "
              f"({np.median(rc[wide]) if wide.any() else np.nan:4.0f}\")"
              f"   {np.median(h['counts_exp'][b]):7.1f}")
    mb = (13.0, 13.25, 13.5, 13.75, 13.85, 14.0, 14.5, 16.0)
    print("log M500c [Msun]       N   extended        detected   (M200c = 1e14 Msun is about "
          "M500c = 10^13.85)")
    for lo, hi, n, (ks, kd) in completeness_rows(np.log10(h["M500c"]), mb,
                                                 (h["sel"], h["det"])):
        if n:
            print(f"  {lo:5.2f} - {hi:5.2f}    {n:4d}  {ks:3d} ({ks / n:4.2f})  "
                  f"{kd:3d} ({kd / n:4.2f})")
    ls50, w = fifty_percent(np.log10(s500), h["sel"])
    lc50, wc = fifty_percent(np.log10(h["counts_exp"]), h["sel"])
    print(f"50 % completeness (extended): S500 = {10 ** ls50:.2e} erg/s/cm^2 (logistic width "
          f"{w:.2f} dex), expected counts {10 ** lc50:.0f} (width {wc:.2f} dex)")
    for label, t in (("unvignetted", t_unvig), ("vignetted", t_vig)):
        r = t / 600.0
        print(f"  if 600 s is the {label} exposure: t ratio {r:.2f}; the same 50 % point at "
              f"600 s: S500 = {10 ** ls50 * r ** 0.5:.2e} (background-limited) to "
              f"{10 ** ls50 * r:.2e} (counts-limited) erg/s/cm^2")
    real = realism.read_efeds_clusters()
    near = ~np.asarray(real["NOT_CLUSTER"], bool) & (_v(real, "z") < NEAR_Z)
    rr, sr = _v(real, "ML_RATE")[near], np.concatenate(near_rate)
    k = h["z"] < NEAR_Z
    print(f"z < {NEAR_Z}, selected clusters per deg^2 above ML_RATE [ct/s]: real eFEDS (secure) / "
          "simulated = ratio; simulated extended completeness of the halos above the same "
          "true rate (CR_true)")
    for c in (0.02, 0.06, 0.1, 0.2, 0.5):
        a, b = np.sum(rr > c) / 140.0, np.sum(sr > c) / area
        above = k & (h["CR_true"] > c)
        print(f"  > {c:4.2f}: {a:.3f} / {b:.3f} = {a / b:4.2f}; completeness "
              f"{h['sel'][above].mean():4.2f} of {above.sum()}")


def zcut_tables(sims, real, cuts=(0.0, 0.1, 0.15, 0.2),
                zb=(0.0, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1.3)):
    """EXT per redshift bin, and issue 21's requirements without the clusters below z_cut.

    Parameters
    ----------
    sims : list of (detections, area_deg2, label)
        Simulated detection tables with ``MATCH_TYPE`` and the matched truth's ``z``.
    real : `~astropy.table.Table`
        `astro_clustermass.simulate.realism.read_efeds_clusters`.

    Returns
    -------
    bins : list of dict
        Per redshift bin: ``n_real``, ``n_sim`` (per 140 deg^2), median EXT real and
        simulated, all and with ML_RATE > 0.1 ct/s.
    cut_results : list of (z_cut, `compare_with_efeds` result, `check_requirements`)
        The simulated density is compared with the real one left after the cut.
    """
    from astro_clustermass.simulate import realism as R

    rz, rext, rrate = (_v(real, c) for c in ("z", "EXT", "ML_RATE"))
    secure = ~np.asarray(real["NOT_CLUSTER"], bool)
    area = sum(float(a) for _, a, _ in sims)
    cl = [_sel_clusters(t) for t, _, _ in sims]
    sz, sext, srate = (np.concatenate([_v(t, c)[m] for (t, _, _), m in zip(sims, cl)])
                       for c in ("z", "EXT", "ML_RATE"))

    def median(v, m):
        return float(np.median(v[m])) if m.any() else np.nan

    bins = []
    for lo, hi in zip(zb[:-1], zb[1:]):
        a, b = secure & (rz >= lo) & (rz < hi), (sz >= lo) & (sz < hi)
        bins.append({"z": (lo, hi), "n_real": int(a.sum()),
                     "n_sim": b.sum() * R.EFEDS_AREA_DEG2 / area,
                     "ext_real": median(rext, a), "ext_sim": median(sext, b),
                     "ext_real_bright": median(rext, a & (rrate > 0.1)),
                     "ext_sim_bright": median(sext, b & (srate > 0.1))})
    cut_results = []
    for cut in cuts:
        keep_real = real[~(secure & (rz < cut))]
        kept = [(t[~(m & (_v(t, "z") < cut))], a, lab) for (t, a, lab), m in zip(sims, cl)]
        res = R.compare_with_efeds(kept, real=keep_real)
        res["density"]["real"] = len(keep_real) / R.EFEDS_AREA_DEG2
        res["density"]["ratio"] = res["density"]["sim"] / res["density"]["real"]
        cut_results.append((cut, res, R.check_requirements(res)))
    return bins, cut_results


def zcut(dirs):
    """Print `zcut_tables` for field realisations."""
    from astro_clustermass.simulate import realism as R

    try:
        sims = R.read_fields(dirs)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    bins, cut_results = zcut_tables(sims, R.read_efeds_clusters())
    area = sum(a for _, a, _ in sims)
    print(f"selected clusters per 140 deg^2 and median EXT [arcsec], real (secure) / "
          f"simulated ({area:g} deg^2 scaled)")
    print("z             N real   N sim   EXT real   EXT sim  ratio   ML_RATE > 0.1: "
          "EXT real / sim")
    for b in bins:
        print(f"{b['z'][0]:4.2f}-{b['z'][1]:4.2f}   {b['n_real']:6d}  {b['n_sim']:6.0f}   "
              f"{b['ext_real']:8.1f}  {b['ext_sim']:8.1f}  {b['ext_sim'] / b['ext_real']:5.2f}"
              f"   {b['ext_real_bright']:6.1f} / {b['ext_sim_bright']:.1f}")
    print("\nissue 21's requirements with the clusters at z < z_cut removed from both "
          "(KS D / median difference; density and non-cluster fraction against the "
          "remaining real catalogue)")
    for cut, res, checks in cut_results:
        n_pass = sum(ok for _, ok in checks.values())
        dens, nonc = checks["density"], checks["non_cluster_fraction"]
        parts = [f"density {res['density']['sim']:.2f}/{res['density']['real']:.2f} "
                 f"({dens[0] - 1:+.0%}{'' if dens[1] else ' FAIL'})",
                 f"non-cluster {nonc[0]:.3f}{'' if nonc[1] else ' FAIL'}"]
        for name in R.REQUIREMENTS["observables"]:
            (ks, md), ok = checks[name]
            md_txt = f"{md:+.3f}" if name == "z" else f"{md:+.0%}"
            parts.append(f"{name} {ks:.3f}/{md_txt}{'' if ok else ' FAIL'}")
        print(f"z_cut {cut:4.2f}: {n_pass} of {len(checks)} pass; " + ", ".join(parts))


def profile_table(efeds_dir, sims=(), zb=(0.0, 0.15, 0.3, 0.5, 1.3),
                  core_radii=(0.10, 0.15, 0.20, 0.25, 0.30, 0.40)):
    """The real clusters' L_500kpc / L_300kpc and EXT / theta500 per redshift bin.

    Parameters
    ----------
    efeds_dir : str
        Folder with the three eFEDS tables of `astro_clustermass.relations.efeds.FILES`.
    sims : list of (detections, truth)
        Field realisations; their selected clusters' EXT / (60 R500c_arcmin) is added.

    Returns
    -------
    list of dict per bin: ``z``, ``n`` (clusters with both luminosities), ``ratio_real``,
    ``ratio_model`` (per core radius), ``rc_implied`` (r_c / R500c at which the model's
    median ratio equals the real one; NaN outside the grid), ``ext_theta_real``,
    ``ext_theta_sim``.
    """
    import astropy.units as u
    from astropy.cosmology import FlatLambdaCDM
    from astropy.table import join

    from astro_clustermass.relations import efeds
    from astro_clustermass.relations.lx import aperture_correction
    from astro_clustermass.simulate import realism as R

    liu, chiu = efeds._read(efeds_dir, "liu"), efeds._read(efeds_dir, "chiu")
    real = R.read_efeds_clusters()
    t = join(join(liu, real["Name", "ID_SRC", "EXT", "NOT_CLUSTER", "Z_BEST_COMB"],
                  keys="ID_SRC"), chiu["Name", "r500c_lcdm"], keys="Name")
    z = _v(t, "Z_BEST_COMB")
    secure = ~np.asarray(t["NOT_CLUSTER"], bool)
    theta500 = _v(t, "r500c_lcdm") * 60.0                       # arcsec
    cosmo = FlatLambdaCDM(H0=100 * efeds.LITTLE_H, Om0=0.3)      # Chiu et al.'s
    r500 = (theta500 * u.arcsec).to_value(u.rad) * cosmo.angular_diameter_distance(z).to(u.kpc)
    l3, l5 = _v(t, "L_300kpc"), _v(t, "L_500kpc")
    both = secure & (l3 > 0) & (l5 > 0)
    ext_theta = _v(t, "EXT") / theta500
    if sims:
        sz = np.concatenate([_v(tr, "z")[_truth_rows(det, tr)] for det, tr in sims])
        s_et = np.concatenate([_v(det, "EXT")[_sel_clusters(det)]
                               / (60.0 * _v(tr, "R500c_arcmin")[_truth_rows(det, tr)])
                               for det, tr in sims])
    rows = []
    for lo, hi in zip(zb[:-1], zb[1:]):
        m = both & (z >= lo) & (z < hi)
        model = [float(np.median(aperture_correction(300 * u.kpc, r500[m], core_radius=rc)
                                 / aperture_correction(500 * u.kpc, r500[m], core_radius=rc)))
                 if m.any() else np.nan for rc in core_radii]
        ratio = float(np.median(l5[m] / l3[m])) if m.any() else np.nan
        implied = float(np.interp(ratio, model, core_radii, left=np.nan, right=np.nan))
        me = secure & (z >= lo) & (z < hi)
        row = {"z": (lo, hi), "n": int(m.sum()), "ratio_real": ratio,
               "ratio_model": dict(zip(core_radii, model)), "rc_implied": implied,
               "ext_theta_real": float(np.median(ext_theta[me])) if me.any() else np.nan,
               "ext_theta_sim": np.nan}
        if sims:
            ms = (sz >= lo) & (sz < hi)
            row["ext_theta_sim"] = float(np.median(s_et[ms])) if ms.any() else np.nan
        rows.append(row)
    return rows


def _sel_clusters(det):
    from astro_clustermass.simulate import realism as R

    return R.selected(det) & (np.asarray(det["MATCH_TYPE"]).astype(str) == "cluster")


def _truth_rows(det, truth):
    """Row in ``truth`` of each selected cluster detection's halo."""
    index = {h: i for i, h in enumerate(np.asarray(truth["HALO_ID"]))}
    return np.array([index[h] for h in np.asarray(det["HALO_ID"])[_sel_clusters(det)]], int)


def profiles(dirs, efeds_dir):
    """Print `profile_table`."""
    from astro_clustermass.simulate import read_realisation

    sims = [(r.detections, r.truth) for r in (read_realisation(d) for d in dirs)]
    rows = profile_table(efeds_dir, sims)
    radii = list(rows[0]["ratio_model"])
    print("real secure eFEDS clusters: median L_500kpc / L_300kpc (Liu et al. 2022) against a "
          "projected beta model (beta 0.67, R500c of Chiu et al.); EXT / theta500")
    print("z            N   real   model at r_c/R500c = " + " ".join(f"{r:.2f}" for r in radii)
          + "   implied r_c   EXT/theta500 real" + ("  sim" if sims else ""))
    for r in rows:
        print(f"{r['z'][0]:4.2f}-{r['z'][1]:4.2f}  {r['n']:4d}  {r['ratio_real']:.3f}  "
              + " " * 22 + " ".join(f"{v:.3f}" for v in r["ratio_model"].values())
              + f"   {r['rc_implied']:.2f}          {r['ext_theta_real']:.3f}"
              + (f"          {r['ext_theta_sim']:.3f}" if sims else ""))


def extent_mix(seed=5, n_patch=40, core=50.0, photons=250):
    """EXT_FIT / r_c of synthetic isolated clusters with the simulator's shape spreads."""
    from astro_clustermass.simulate import detect, emission
    from astro_clustermass.simulate.config import DEFAULT_CONFIG as C
    from astro_clustermass.simulate.instrument import sample_psf_offsets

    half = 900.0

    def flat(x, y):
        return np.full(np.shape(x), 2200.0)

    out = {}
    for label, beta_sd, spread_q in (("beta = 2/3, round", 0.0, False),
                                     ("beta spread", C.beta_sd, False),
                                     ("axis ratios", 0.0, True), ("both", C.beta_sd, True)):
        rng = np.random.default_rng(seed)
        ratio = []
        for _ in range(n_patch):
            nb = rng.poisson(0.0028 * 2200 * (2 * half / 60) ** 2)
            bx, by = rng.uniform(-half, half, nb), rng.uniform(-half, half, nb)
            beta = np.clip(rng.normal(C.beta_mean, beta_sd), 0.52, 0.95) if beta_sd else 2 / 3
            q = np.clip(rng.normal(C.axis_ratio_mean, C.axis_ratio_sd), 0.5, 1.0) \
                if spread_q else 1.0
            props = {"beta": np.array([beta]), "rc": np.array([0.2]), "rc_cc": np.array([0.03]),
                     "f_cc": np.array([0.0]), "b_to_a": np.array([q]),
                     "pa": np.array([rng.random() * np.pi]), "Xoff": np.array([0.0]),
                     "xoff_pa": np.array([0.0])}
            dx, dy, _ = emission.sample_cluster_offsets(rng, [photons], props,
                                                        [core / 0.2], C)
            px, py = sample_psf_offsets(rng, photons, C)
            d = detect.detect_patch(np.r_[bx, dx + px], np.r_[by, dy + py], half, flat,
                                    C.replace(det_two_point=False), 0.53)
            dd = np.hypot(d["x"], d["y"])
            k = np.argmin(dd)
            ratio.append(d["EXT_FIT"][k] / core if dd[k] < 30 else np.nan)
        out[label] = (float(np.nanmedian(ratio)), int(np.isfinite(ratio).sum()))
    return out


def extentmix(dirs):
    """Print `extent_mix` and, for field directories, EXT / true core per core bin."""
    from astro_clustermass.simulate import read_realisation

    for label, (ratio, n) in extent_mix().items():
        print(f"synthetic, core 50\", {label}: median EXT_FIT / r_c {ratio:.2f} "
              f"({n} of 40 found)")
    if not dirs:
        return
    core, ext, cc = [], [], []
    for d in dirs:
        r = read_realisation(d)
        det, tr = r.detections, r.truth
        rows = _truth_rows(det, tr)
        core.append(_v(tr, "rc")[rows] * _v(tr, "R500c_arcmin")[rows] * 60.0)
        ext.append(_v(det, "EXT")[_sel_clusters(det)])
        cc.append(np.asarray(tr["cool_core"], bool)[rows])
    core, ext, cc = (np.concatenate(v) for v in (core, ext, cc))
    print("selected clusters: true core [arcsec]   N, median EXT / core without a cool core"
          "   N, with one")
    for lo, hi in ((5, 15), (15, 30), (30, 50), (50, 80), (80, 300)):
        m = (core >= lo) & (core < hi)
        a, b = m & ~cc, m & cc
        ra = np.median(ext[a] / core[a]) if a.any() else np.nan
        rb = np.median(ext[b] / core[b]) if b.any() else np.nan
        print(f"{lo:3d}-{hi:3d}   {a.sum():4d}  {ra:.2f}    {b.sum():4d}  {rb:.2f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("rate", "fields", "chiu", "nearby", "lumfun", "boxlike",
                                    "variance", "extent", "completeness", "grouplx", "zcut",
                                    "profiles", "extentmix"))
    p.add_argument("--efeds-dir", default="tests/data/efeds",
                   help="folder with the three eFEDS tables (profiles)")
    p.add_argument("--liu", help="Liu et al. (2022) table (lumfun)")
    p.add_argument("--thresholds", default="5,6,7,8", help="BOX_LIKE thresholds (boxlike)")
    p.add_argument("--zmax", type=float, default=0.2, help="halos below this z (completeness)")
    p.add_argument("--ext-like", type=float, default=6.0,
                   help="EXT_LIKE threshold of the extended selection (completeness)")
    p.add_argument("dirs", nargs="*")
    a = p.parse_args(argv)
    if a.what == "rate":
        rate_table()
    elif a.what == "fields":
        fields(a.dirs)
    elif a.what == "chiu":
        chiu(a.dirs)
    elif a.what == "nearby":
        nearby(a.dirs)
    elif a.what == "lumfun":
        lumfun(a.dirs, a.liu)
    elif a.what == "boxlike":
        boxlike(a.dirs, [float(t) for t in a.thresholds.split(",")])
    elif a.what == "variance":
        variance()
    elif a.what == "completeness":
        completeness(a.dirs, a.zmax, a.ext_like)
    elif a.what == "grouplx":
        grouplx(a.dirs)
    elif a.what == "zcut":
        zcut(a.dirs)
    elif a.what == "profiles":
        profiles(a.dirs, a.efeds_dir)
    elif a.what == "extentmix":
        extentmix(a.dirs)
    else:
        extent()


if __name__ == "__main__":
    main()
