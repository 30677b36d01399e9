"""Full-field mode: one contiguous eFEDS-like field (all halos above 1e13 Msun)."""

from __future__ import annotations

import logging
import os
import time

import numpy as np
from astropy.table import Table

from .. import _version
from . import agn as _agn
from . import halos, instrument, io, survey
from .config import DEFAULT_CONFIG
from .match import match_detections, unit_vectors

log = logging.getLogger("astro_clustermass")

__all__ = ["simulate_field", "generate_field_sky"]


def _rngs(seed, n):
    ss = np.random.SeedSequence(seed)
    return [np.random.default_rng(s) for s in ss.spawn(n)]


def _place_hosted_agn(rng, hosts, cl, ra_c, dec_c, config):
    """Positions of AGN hosted by halos ``hosts``: uniform in projected radius < R500c."""
    r = rng.random(hosts.size) * cl["R500c_arcmin"][hosts] * 60.0
    phi = rng.random(hosts.size) * 2 * np.pi
    return survey.offsets_to_radec(ra_c[hosts], dec_c[hosts], r * np.cos(phi), r * np.sin(phi))


def generate_field_sky(area_deg2, seed, config=DEFAULT_CONFIG, center=(136.0, 1.5)):
    """Sources and photons of one field (no detection).

    Returns
    -------
    dict with ``truth`` (dict of arrays, one per halo), ``agn`` (dict of arrays),
    ``events`` (dict of arrays), ``exposure`` (`ExposureMap`), ``box`` (ra_range,
    dec_range), ``timing`` (dict, s)
    """
    t0 = time.perf_counter()
    r_halo, r_prop, r_agn, r_ph, r_bkg, r_expo, r_misc = _rngs(seed, 7)
    ra_range, dec_range = survey.field_box(area_deg2, center)
    expo = instrument.ExposureMap(ra_range, dec_range, config, r_expo,
                                  vignetting=survey.band_vignetting(config))
    lm, z = halos.sample_halos(r_halo, config, area_deg2)
    ra, dec = survey.uniform_in_box(r_halo, lm.size, ra_range, dec_range)
    cl = survey.make_clusters(r_prop, lm, z, config)
    texp_cl = expo(ra, dec)
    timing = {"halos": time.perf_counter() - t0}

    # AGN: field + hosted by halos
    n_field = r_agn.poisson(_agn.expected_number(config, area_deg2))
    nhost = survey.cluster_agn_counts(r_agn, cl["M500c"], config)
    hosts = np.repeat(np.arange(lm.size), nhost)
    ag = survey.make_agn(r_agn, n_field + hosts.size, config)
    a_ra, a_dec = survey.uniform_in_box(r_agn, n_field, ra_range, dec_range)
    h_ra, h_dec = _place_hosted_agn(r_agn, hosts, cl, ra, dec, config)
    ag["RA"] = np.concatenate([a_ra, h_ra])
    ag["DEC"] = np.concatenate([a_dec, h_dec])
    ag["HOST_ID"] = np.concatenate([np.zeros(n_field, np.int64), hosts + 1])
    texp_ag = expo(ag["RA"], ag["DEC"])

    # photons
    dx, dy, e_cl, s_cl = survey.cluster_photons(r_ph, cl, texp_cl, config)
    c_ra, c_dec = survey.offsets_to_radec(ra[s_cl], dec[s_cl], dx, dy)
    dx, dy, e_ag, s_ag = survey.agn_photons(r_ph, ag, texp_ag, config)
    g_ra, g_dec = survey.offsets_to_radec(ag["RA"][s_ag], ag["DEC"][s_ag], dx, dy)
    area_arcmin2 = area_deg2 * 3600.0
    nb, e_bk = survey.background_photons(r_bkg, area_arcmin2, expo.max, config)
    b_ra, b_dec = survey.uniform_in_box(r_bkg, nb, ra_range, dec_range)
    keep_b = r_bkg.random(nb) < expo(b_ra, b_dec) / expo.max
    ev_ra = np.concatenate([c_ra, g_ra, b_ra[keep_b]])
    ev_dec = np.concatenate([c_dec, g_dec, b_dec[keep_b]])
    ev_e = np.concatenate([e_cl, e_ag, e_bk[keep_b]])
    ev_src = np.concatenate(
        [s_cl + 1, -(s_ag + 1), np.zeros(keep_b.sum(), np.int64)]).astype(np.int64)
    inside = expo(ev_ra, ev_dec) > 0
    ev_ra, ev_dec, ev_e, ev_src = ev_ra[inside], ev_dec[inside], ev_e[inside], ev_src[inside]
    timing["photons"] = time.perf_counter() - t0 - timing["halos"]

    # truth bookkeeping
    cl["HALO_ID"] = np.arange(1, lm.size + 1, dtype=np.int64)
    cl["RA"], cl["DEC"] = ra, dec
    xo = cl["Xoff"] * cl["R500c_arcmin"] * 60.0
    cl["RA_X"], cl["DEC_X"] = survey.offsets_to_radec(ra, dec, xo * np.cos(cl["xoff_pa"]),
                                                      xo * np.sin(cl["xoff_pa"]))
    cl["EXPOSURE"] = texp_cl
    cl["counts_exp"] = cl["rate_survey"] * texp_cl
    cl["n_photons"] = np.bincount(ev_src[ev_src > 0] - 1, minlength=lm.size)
    cl["n_agn_hosted"] = nhost
    tc = np.linspace(config.tstart, config.tstop, 1)
    del tc
    events = {"RA": ev_ra, "DEC": ev_dec, "PI": (ev_e * 1000.0).astype(np.float32),
              "SRC_ID": ev_src,
              "TIME": np.sort(r_misc.uniform(config.tstart, config.tstop, ev_ra.size)),
              "TM_NR": r_misc.integers(1, 8, ev_ra.size).astype(np.uint8)}
    perm = r_misc.permutation(ev_ra.size)          # shuffle: no ordering by source type
    for k in ("RA", "DEC", "PI", "SRC_ID"):
        events[k] = events[k][perm]
    return {"truth": cl, "agn": ag, "events": events, "exposure": expo,
            "box": (ra_range, dec_range), "timing": timing, "center": center}


def _tiles(ra_range, dec_range, size_deg=1.5):
    dec_c = 0.5 * sum(dec_range)
    nra = max(1, int(np.ceil((ra_range[1] - ra_range[0]) * np.cos(np.radians(dec_c)) / size_deg)))
    ndec = max(1, int(np.ceil((dec_range[1] - dec_range[0]) / size_deg)))
    ra_e = np.linspace(*ra_range, nra + 1)
    dec_e = np.linspace(*dec_range, ndec + 1)
    return [((ra_e[i], ra_e[i + 1]), (dec_e[j], dec_e[j + 1]))
            for j in range(ndec) for i in range(nra)]


_TILE_CTX = {}     # state shared with forked tile workers (see detect_field)


def _detect_tile(k):
    """Detection in tile ``k`` of the field in ``_TILE_CTX`` (photons sorted by Dec)."""
    c = _TILE_CTX
    ev, expo, config, vign = c["events"], c["exposure"], c["config"], c["vign"]
    (r0, r1), (d0, d1) = c["tiles"][k]
    margin = c["margin"]
    cosd = np.cos(np.radians(min(abs(d0), abs(d1)) if d0 * d1 > 0 else 0.0))
    ra_t, dec_t = 0.5 * (r0 + r1), 0.5 * (d0 + d1)
    half = 0.5 * max((r1 - r0) * cosd, d1 - d0) * 3600.0 + margin
    # every photon of the square patch (detect_patch crops to it exactly): a tile that is
    # narrower than the square must not leave strips with exposure but no photons, which
    # would bias the background map low and the detections near them high
    hd = half / 3600.0 * 1.01 + 0.01
    lo, hi = np.searchsorted(c["dec_sorted"], [dec_t - hd, dec_t + hd])
    idx = c["order"][lo:hi]
    cos_far = np.cos(np.radians(min(89.0, max(abs(dec_t - hd), abs(dec_t + hd)))))
    dra = (ev["RA"][idx] - ra_t + 180.0) % 360.0 - 180.0
    idx = idx[np.abs(dra) <= hd / cos_far]

    def core(r, d):
        return (r >= r0) & (r < r1) & (d >= d0) & (d < d1)

    return survey.detect_in_patch(ra_t, dec_t, half, ev["RA"][idx], ev["DEC"][idx],
                                  expo, config, vign, core=core)


def detect_field(sky, config=DEFAULT_CONFIG, progress=True, workers=1):
    """Run detection over a field in ~1.5 deg tiles; returns a dict of arrays.

    The tiles are independent (each with a margin of photons around it), so with
    ``workers > 1`` they are shared among that many forked processes; the result does
    not depend on ``workers``.
    """
    from tqdm.auto import tqdm

    ev = sky["events"]
    order = np.argsort(ev["DEC"])
    tiles = _tiles(*sky["box"])
    _TILE_CTX.update(events=ev, exposure=sky["exposure"], config=config,
                     vign=survey.band_vignetting(config), margin=config.det_fit_radius + 30.0,
                     order=order, dec_sorted=ev["DEC"][order], tiles=tiles)
    try:
        bar = dict(total=len(tiles), desc="detect (tiles)", disable=not progress, unit="tile")
        if workers > 1 and len(tiles) > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=workers,
                                     mp_context=mp.get_context("fork")) as ex:
                out = list(tqdm(ex.map(_detect_tile, range(len(tiles))), **bar))
        else:
            out = [_detect_tile(k) for k in tqdm(range(len(tiles)), **bar)]
    finally:
        _TILE_CTX.clear()
    det = {k: np.concatenate([d[k] for d in out]) for k in out[0]}
    return det


def _truth_table(cl):
    names = ["HALO_ID", "RA", "DEC", "RA_X", "DEC_X", "M500c", "z", "R500c_kpc", "R500c_arcmin",
             "LX", "T", "dlogLX", "dlogT", "FLUX", "FLUX_TOT", "CR_true", "EXPOSURE",
             "counts_exp", "n_photons", "rc", "beta", "cool_core", "rc_cc", "f_cc", "b_to_a",
             "pa", "Xoff", "xoff_pa", "n_agn_hosted"]
    t = Table({k: np.asarray(cl[k]) for k in names if k in cl})
    t.rename_column("b_to_a", "b_to_a_500c")
    if "central" in cl:
        t["central"] = np.asarray(cl["central"], bool)
    else:
        t["central"] = np.ones(len(t), bool)
    for k in ("STAMP",):
        if k in cl:
            t[k] = np.asarray(cl[k])
    return t


def _det_table(det, match):
    n = len(det["RA"])
    t = Table()
    t["ID_SRC"] = np.arange(1, n + 1, dtype=np.int32)
    for k in ("RA", "DEC", "DET_LIKE", "EXT_LIKE", "EXT", "EXT_FIT", "ML_RATE", "ML_RATE_ERR",
              "ML_CTS", "ML_CTS_ERR", "ML_EXP", "ML_BKG", "DET_LIKE_PNT", "DET_LIKE_EXT",
              "BOX_LIKE"):
        t[k] = np.asarray(det[k], np.float64 if k in ("RA", "DEC") else np.float32)
    if "STAMP" in det:
        t["STAMP"] = np.asarray(det["STAMP"], np.int32)
    for k, v in match.items():
        t[k] = v
    return t


def simulate_field(outdir, area=140.0, seed=0, config=DEFAULT_CONFIG, progress=True,
                   overwrite=False, write_events=True, center=(136.0, 1.5), workers=1):
    """Simulate one eFEDS-like field: events, truth and detections, written to ``outdir``.

    Parameters
    ----------
    outdir : str
        Output directory (created). A finished run there is not redone unless
        ``overwrite`` (resumable at the level of whole realisations).
    area : float
        Field area [deg^2] (eFEDS: 140).
    seed : int
        Root seed; the run is reproducible from it.
    config : SimConfig
    progress, overwrite, write_events : bool
    center : (ra, dec)
        Field centre [deg].
    workers : int
        Processes for the source detection (independent tiles); the results do not
        depend on it.

    Returns
    -------
    Realisation (see `astro_clustermass.simulate.read_realisation`)
    """
    os.makedirs(outdir, exist_ok=True)
    det_path = os.path.join(outdir, "detections.fits")
    if os.path.exists(det_path) and not overwrite:
        log.info("%s already finished: not redone", outdir)
        return io.read_realisation(outdir)
    t0 = time.perf_counter()
    man = {"mode": "field", "seed": int(seed), "area_deg2": float(area),
           "center_deg": [float(center[0]), float(center[1])],
           "version": _version.__version__, "config": config.to_dict(), "status": "running"}
    io.write_manifest(os.path.join(outdir, "manifest.yaml"), man)
    sky = generate_field_sky(area, seed, config, center)
    t1 = time.perf_counter()
    det = detect_field(sky, config, progress=progress, workers=workers)
    t2 = time.perf_counter()
    ev = sky["events"]
    from scipy.spatial import cKDTree

    tree = cKDTree(unit_vectors(ev["RA"], ev["DEC"]))
    match = match_detections(det["RA"], det["DEC"], det["EXT"], ev["RA"], ev["DEC"],
                             ev["SRC_ID"], tree=tree, det_like=det["DET_LIKE"])
    t3 = time.perf_counter()
    truth = _truth_table(sky["truth"])
    dtab = _det_table(det, match)
    dtab = io.attach_truth(dtab, truth)
    matched_halos = np.asarray(dtab["HALO_ID"])[np.asarray(dtab["MATCHED"])]
    truth["detected"] = np.isin(truth["HALO_ID"], matched_halos)
    if write_events:
        x, y = survey.radec_to_offsets(center[0], center[1], ev["RA"], ev["DEC"])
        evd = dict(ev)
        evd["X"] = (x / 0.05).astype(np.float32)
        evd["Y"] = (y / 0.05).astype(np.float32)
        io.write_events(os.path.join(outdir, "events.fits"), evd, center, config,
                        extra_header={"SEED": int(seed)})
    io.write_table_atomic(truth, os.path.join(outdir, "truth.fits"), "TRUTH")
    io.write_table_atomic(dtab, det_path, "DETECTIONS")
    t4 = time.perf_counter()
    sel = (dtab["EXT_LIKE"] > 6) & (dtab["DET_LIKE"] > 5)
    man.update({"status": "done",
                "counts": {"halos": int(len(truth)), "agn": int(len(sky["agn"]["FLUX"])),
                           "events": int(len(ev["RA"])), "detections": int(len(dtab)),
                           "selected": int(sel.sum()),
                           "selected_matched": int((sel & dtab["MATCHED"]).sum())},
                "timing_s": {"halos": round(sky["timing"]["halos"], 2),
                             "photons": round(sky["timing"]["photons"], 2),
                             "sky_total": round(t1 - t0, 2), "detect": round(t2 - t1, 2),
                             "match": round(t3 - t2, 2), "write": round(t4 - t3, 2),
                             "total": round(t4 - t0, 2)}})
    io.write_manifest(os.path.join(outdir, "manifest.yaml"), man)
    return io.read_realisation(outdir)
