"""Stamps mode: training-set-sized samples without simulating whole fields.

1. Halos are drawn from the mass function over a large *virtual* area (blocks of
   ``_BLOCK_DEG2``) with the root seed, their L_X, T and shapes drawn, and those with at
   least ``stamp_min_counts`` expected photons within R500c (at the mean exposure) become
   stamp centres. This conservative pre-selection (the eFEDS selection needs tens of
   counts) is verified in ``docs/validation.rst`` not to cut into the selected sample.
2. Stamps are processed in chunks of ``chunk_size``; chunk k uses its own seed
   ``SeedSequence(seed, spawn_key=(10, k))``, so results do not depend on the number of
   workers or on which chunks were already done (resumable).
3. Each stamp (``stamp_size`` square, its own tangent plane at a distinct virtual sky
   position on a 0.5 deg grid) gets: the central halo at its centre; neighbouring halos
   (Poisson, all masses, unclustered, in the stamp plus a 300" border; those expected to
   give fewer than ``stamp_neighbour_min_counts`` photons are dropped); AGN at the
   logN-logS density plus those hosted by the halos; background; an exposure taken
   from a random position of a reference eFEDS-like exposure map.
4. Detection runs on each stamp's photons; detections within ``stamp_keep_radius`` of
   the centre are kept. ``MATCHED`` is True for the detection of the central halo only
   (a neighbour's detection is ``MATCH_TYPE = 'neighbour-cluster'``).
"""

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
from .detect import detect_patch
from .match import match_detections

log = logging.getLogger("astro_clustermass")

__all__ = ["simulate_stamps", "central_halos", "stamp_centres"]

_BLOCK_DEG2 = 200.0
_PAD = 300.0           # arcsec border around a stamp for neighbours and AGN
_GRID_DEG = 0.5
_SELECTION = ("EXT_LIKE", 6.0, "DET_LIKE", 5.0)


def _ss(seed, *key):
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def central_halos(seed, area_deg2, config=DEFAULT_CONFIG):
    """Halos of the virtual area that pass the expected-counts pre-selection.

    Returns (dict of arrays, number of halos drawn in all).
    """
    keep, ndrawn = [], 0
    nblocks = int(np.ceil(area_deg2 / _BLOCK_DEG2))
    for b in range(nblocks):
        a = min(_BLOCK_DEG2, area_deg2 - b * _BLOCK_DEG2)
        rng = _ss(seed, 0, b)
        lm, z = halos.sample_halos(rng, config, a)
        ndrawn += lm.size
        cl = survey.make_clusters(rng, lm, z, config)
        counts = cl["rate_survey"] * config.exposure_mean
        sel = counts >= config.stamp_min_counts
        keep.append({k: np.asarray(v)[sel] for k, v in cl.items()})
    out = {k: np.concatenate([d[k] for d in keep]) for k in keep[0]}
    return out, ndrawn


def stamp_centres(n):
    """Virtual sky positions (deg) of stamps 0..n-1 on a 0.5 deg grid, |Dec| < 60."""
    ra_list, dec_list = [], []
    for dec in np.arange(-59.75, 60.0, _GRID_DEG):
        step = _GRID_DEG / np.cos(np.radians(dec))
        ras = np.arange(1.0 + step / 2, 359.0, step)
        ra_list.append(ras)
        dec_list.append(np.full(ras.size, dec))
        if sum(r.size for r in ra_list) >= n:
            break
    ra = np.concatenate(ra_list)
    dec = np.concatenate(dec_list)
    if ra.size < n:
        raise ValueError(f"at most {ra.size} stamps fit on the virtual sky grid, asked {n}")
    return ra[:n], dec[:n]


def _reference_exposure(seed, config):
    ra_range, dec_range = survey.field_box(140.0)
    expo = instrument.ExposureMap(ra_range, dec_range, config, _ss(seed, 3),
                                  vignetting=survey.band_vignetting(config))
    return expo, ra_range, dec_range


def _chunk_paths(outdir, k):
    tag = f"_c{k:05d}"
    return {n: os.path.join(outdir, f"{n}{tag}.fits") for n in ("events", "truth", "detections")}


def _run_chunk(outdir, seed, k, cen, gidx, config, keep_events):
    """Simulate and detect one chunk of stamps; writes its three files."""
    rng = _ss(seed, 10, k)
    nst = gidx.size
    half = config.stamp_size / 2
    padh = half + _PAD
    s_ra, s_dec = stamp_centres(int(gidx.max()) + 1)
    s_ra, s_dec = s_ra[gidx], s_dec[gidx]
    emap, (r0, r1), (d0, d1) = _reference_exposure(seed, config)
    # reference positions well inside the reference field
    m = 0.5
    ref_ra = rng.uniform(r0 + m, r1 - m, nst)
    ref_dec = rng.uniform(d0 + m, d1 - m, nst)
    cosr = np.cos(np.radians(ref_dec))

    def texp(st, dx, dy):
        return emap(ref_ra[st] + dx / 3600.0 / cosr[st], ref_dec[st] + dy / 3600.0)

    # -- halos: central + neighbours
    dens_all = halos.expected_number(config, 1.0)            # per deg^2
    pad_area = (2 * padh / 3600.0) ** 2
    n_nb = rng.poisson(dens_all * pad_area, nst)
    lm, z = halos.sample_halos(rng, config, pad_area * nst, n=int(n_nb.sum()))
    nb = survey.make_clusters(rng, lm, z, config)
    nb_st = np.repeat(np.arange(nst), n_nb)
    nb_x = rng.uniform(-padh, padh, lm.size)
    nb_y = rng.uniform(-padh, padh, lm.size)
    keepnb = nb["rate_survey"] * texp(nb_st, nb_x, nb_y) >= config.stamp_neighbour_min_counts
    nb = {kk: np.asarray(v)[keepnb] for kk, v in nb.items()}
    nb_st, nb_x, nb_y = nb_st[keepnb], nb_x[keepnb], nb_y[keepnb]
    # neighbour index within its stamp (ids)
    order_in = np.zeros(nb_st.size, np.int64)
    if nb_st.size:
        first = np.searchsorted(nb_st, np.arange(nst))
        order_in = np.arange(nb_st.size) - first[nb_st] + 1
    if order_in.size and order_in.max() >= 1000:
        raise RuntimeError("more than 999 neighbour halos in one stamp")
    cl = {kk: np.concatenate([np.asarray(cen[kk]), np.asarray(nb[kk])]) for kk in cen}
    cl_st = np.concatenate([np.arange(nst), nb_st])
    cl_x = np.concatenate([np.zeros(nst), nb_x])
    cl_y = np.concatenate([np.zeros(nst), nb_y])
    cl_id = np.concatenate(
        [(gidx + 1) * 1000, (gidx[nb_st] + 1) * 1000 + order_in]).astype(np.int64)
    central = np.concatenate([np.ones(nst, bool), np.zeros(nb_st.size, bool)])
    t_cl = texp(cl_st, cl_x, cl_y)

    # -- AGN: field + hosted
    n_ag = rng.poisson(_agn.expected_number(config, pad_area), nst)
    ag_st = np.repeat(np.arange(nst), n_ag)
    ag_x = rng.uniform(-padh, padh, ag_st.size)
    ag_y = rng.uniform(-padh, padh, ag_st.size)
    nhost = survey.cluster_agn_counts(rng, cl["M500c"], config)
    hosts = np.repeat(np.arange(cl_st.size), nhost)
    rr = rng.random(hosts.size) * cl["R500c_arcmin"][hosts] * 60.0
    ph = rng.random(hosts.size) * 2 * np.pi
    ag_st = np.concatenate([ag_st, cl_st[hosts]])
    ag_x = np.concatenate([ag_x, cl_x[hosts] + rr * np.cos(ph)])
    ag_y = np.concatenate([ag_y, cl_y[hosts] + rr * np.sin(ph)])
    ag = survey.make_agn(rng, ag_st.size, config)
    ag_n = np.bincount(ag_st, minlength=nst)
    ag_first = np.concatenate([[0], np.cumsum(ag_n)[:-1]])
    ag_order = np.argsort(ag_st, kind="stable")
    ag_st, ag_x, ag_y = ag_st[ag_order], ag_x[ag_order], ag_y[ag_order]
    ag = {kk: v[ag_order] for kk, v in ag.items()}
    ag_id = -((gidx[ag_st] + 1) * 100000 + (np.arange(ag_st.size) - ag_first[ag_st] + 1))
    t_ag = texp(ag_st, ag_x, ag_y)

    # -- photons
    dx, dy, e_c, s_c = survey.cluster_photons(rng, cl, t_cl, config)
    px_c, py_c = cl_x[s_c] + dx, cl_y[s_c] + dy
    dx, dy, e_a, s_a = survey.agn_photons(rng, ag, t_ag, config)
    px_a, py_a = ag_x[s_a] + dx, ag_y[s_a] + dy
    tmax = emap.max
    area_arcmin2 = (config.stamp_size / 60.0) ** 2
    nbk = rng.poisson(survey.background_rate(config) * tmax * area_arcmin2, nst)
    bk_st = np.repeat(np.arange(nst), nbk)
    bx = rng.uniform(-half, half, bk_st.size)
    by = rng.uniform(-half, half, bk_st.size)
    keepb = rng.random(bk_st.size) < texp(bk_st, bx, by) / tmax
    e_b = survey.background_energies(rng, int(keepb.sum()), config)
    ev_st = np.concatenate([cl_st[s_c], ag_st[s_a], bk_st[keepb]])
    ev_x = np.concatenate([px_c, px_a, bx[keepb]])
    ev_y = np.concatenate([py_c, py_a, by[keepb]])
    ev_e = np.concatenate([e_c, e_a, e_b])
    ev_src = np.concatenate([cl_id[s_c], ag_id[s_a], np.zeros(int(keepb.sum()), np.int64)])
    inside = (np.abs(ev_x) < half) & (np.abs(ev_y) < half) & (texp(ev_st, ev_x, ev_y) > 0)
    o = np.lexsort((rng.random(int(inside.sum())), ev_st[inside]))
    ev_st, ev_x, ev_y, ev_e, ev_src = (a[inside][o] for a in (ev_st, ev_x, ev_y, ev_e, ev_src))
    ev_ra, ev_dec = survey.offsets_to_radec(s_ra[ev_st], s_dec[ev_st], ev_x, ev_y)
    nphot = np.bincount(np.searchsorted(np.sort(cl_id), ev_src[ev_src > 0]),
                        minlength=cl_id.size)
    idsort = np.argsort(cl_id)
    n_photons = np.empty(cl_id.size, np.int64)
    n_photons[idsort] = nphot

    # -- detection per stamp
    vign = survey.band_vignetting(config)
    bounds = np.searchsorted(ev_st, np.arange(nst + 1))
    dets = []
    keep_r = config.stamp_keep_radius
    for j in range(nst):
        a, b = bounds[j], bounds[j + 1]

        def expo_xy(xx, yy, j=j):
            return texp(np.full(np.shape(xx), j), xx, yy)

        det = detect_patch(ev_x[a:b], ev_y[a:b], half, expo_xy, config, vign,
                           roi=lambda xx, yy: np.hypot(xx, yy) < keep_r)
        det["RA"], det["DEC"] = survey.offsets_to_radec(s_ra[j], s_dec[j], det.pop("x"),
                                                        det.pop("y"))
        mt = match_detections(det["RA"], det["DEC"], det["EXT"], ev_ra[a:b], ev_dec[a:b],
                              ev_src[a:b], det_like=det["DET_LIKE"])
        cid = (gidx[j] + 1) * 1000
        nbr = (mt["MATCH_TYPE"] == "cluster") & (mt["HALO_ID"] != cid)
        mt["MATCH_TYPE"][nbr] = "neighbour-cluster"
        mt["MATCHED"] = mt["MATCH_TYPE"] == "cluster"
        det.update(mt)
        det["STAMP"] = np.full(len(det["RA"]), gidx[j], np.int64)
        dets.append(det)
    det = {kk: np.concatenate([d[kk] for d in dets]) for kk in dets[0]}

    # -- tables
    from .field import _det_table, _truth_table

    cl["HALO_ID"] = cl_id
    cl["RA"], cl["DEC"] = survey.offsets_to_radec(s_ra[cl_st], s_dec[cl_st], cl_x, cl_y)
    xo = cl["Xoff"] * cl["R500c_arcmin"] * 60.0
    cl["RA_X"], cl["DEC_X"] = survey.offsets_to_radec(
        s_ra[cl_st], s_dec[cl_st],
        cl_x + xo * np.cos(cl["xoff_pa"]), cl_y + xo * np.sin(cl["xoff_pa"]))
    cl["EXPOSURE"] = t_cl
    cl["counts_exp"] = cl["rate_survey"] * t_cl
    cl["n_photons"] = n_photons
    cl["n_agn_hosted"] = nhost
    cl["central"] = central
    cl["STAMP"] = gidx[cl_st]
    truth = _truth_table(cl)
    match = {kk: det.pop(kk) for kk in ("MATCH_TYPE", "MATCHED", "HALO_ID", "AGN_ID",
                                        "MATCH_NPHOT", "MATCH_PURITY")}
    dtab = _det_table(det, match)
    dtab = io.attach_truth(dtab, truth)
    matched_ids = np.asarray(dtab["HALO_ID"])[np.asarray(dtab["MATCHED"])]
    truth["detected"] = np.isin(truth["HALO_ID"], matched_ids)
    selected = np.asarray(dtab["MATCHED"]) & (np.asarray(dtab["EXT_LIKE"]) > _SELECTION[1]) & \
        (np.asarray(dtab["DET_LIKE"]) > _SELECTION[3])
    if keep_events == "all":
        ev_keep = np.ones(ev_st.size, bool)
    elif keep_events == "selected":
        ev_keep = np.isin(gidx[ev_st], np.asarray(dtab["STAMP"])[selected])
    else:
        ev_keep = np.zeros(ev_st.size, bool)
    paths = _chunk_paths(outdir, k)
    stamps = Table({"STAMP": gidx, "RA_CEN": s_ra, "DEC_CEN": s_dec, "REF_RA": ref_ra,
                    "REF_DEC": ref_dec, "HAS_EVENTS": np.isin(gidx, gidx[ev_st[ev_keep]])})
    evd = {"RA": ev_ra[ev_keep], "DEC": ev_dec[ev_keep],
           "PI": (ev_e[ev_keep] * 1000).astype(np.float32),
           "TIME": np.sort(rng.uniform(config.tstart, config.tstop, int(ev_keep.sum()))),
           "X": (ev_x[ev_keep] / 0.05).astype(np.float32),
           "Y": (ev_y[ev_keep] / 0.05).astype(np.float32),
           "TM_NR": rng.integers(1, 8, int(ev_keep.sum())).astype(np.uint8),
           "SRC_ID": ev_src[ev_keep], "STAMP": gidx[ev_st[ev_keep]].astype(np.int32)}
    io.write_events(paths["events"], evd, (0.0, 0.0), config,
                    extra_header={"SEED": int(seed), "CHUNK": int(k),
                                  "HIERARCH XY_FRAME": "per stamp, tangent at STAMPS centre"},
                    stamps=stamps)
    io.write_table_atomic(truth, paths["truth"], "TRUTH")
    io.write_table_atomic(dtab, paths["detections"], "DETECTIONS")   # written last: sentinel
    return {"chunk": int(k), "stamps": int(nst), "detections": int(len(dtab)),
            "selected": int(selected.sum()), "events": int(ev_st.size)}


def _chunk_job(args):
    return _run_chunk(*args)


def simulate_stamps(outdir, n_halos=None, area=None, seed=0, config=DEFAULT_CONFIG,
                    progress=True, resume=True, workers=1, keep_events="selected",
                    max_chunks=None):
    """Simulate stamps around halos of a virtual survey area; write chunks to ``outdir``.

    Parameters
    ----------
    outdir : str
    n_halos : int, optional
        Approximate number of stamps (central halos) wanted; the virtual area is set to
        give this many on average. Give this or ``area``.
    area : float, optional
        Virtual area [deg^2].
    seed : int
        Root seed (results reproducible from it, independent of ``workers``).
    config : SimConfig
    progress : bool
        tqdm progress bar over chunks.
    resume : bool
        Skip chunks whose files exist (same seed and parameters, checked in the manifest).
    workers : int
        Processes for chunks.
    keep_events : {"selected", "all", "none"}
        Which stamps' photons go into the event files: those whose central halo is
        detected and passes EXT_LIKE > 6 & DET_LIKE > 5 (default, saves disk), all, none.
    max_chunks : int, optional
        Stop after this many chunks (to measure or to do the work in pieces).

    Returns
    -------
    Realisation
    """
    from tqdm.auto import tqdm

    if (n_halos is None) == (area is None):
        raise ValueError("give exactly one of n_halos and area")
    if keep_events not in ("selected", "all", "none"):
        raise ValueError(f"keep_events must be 'selected', 'all' or 'none', not {keep_events!r}")
    os.makedirs(outdir, exist_ok=True)
    mpath = os.path.join(outdir, "manifest.yaml")
    t0 = time.perf_counter()
    if area is None:
        pilot, nd = central_halos(seed + 7919, 50.0, config)
        density = len(pilot["M500c"]) / 50.0
        area = float(n_halos) / max(density, 1e-9)
    area = float(area)
    params = {"mode": "stamps", "seed": int(seed), "area_deg2": area,
              "n_halos_requested": None if n_halos is None else int(n_halos),
              "keep_events": keep_events, "version": _version.__version__,
              "config": config.to_dict()}
    if os.path.exists(mpath):
        old = io.read_manifest(outdir)
        same = all(old.get(k) == v for k, v in params.items() if k != "version")
        if not same:
            if resume:
                raise ValueError(f"{outdir!r} holds a stamps run with other parameters or seed; "
                                 "use another directory or resume=False")
        if not resume:
            for f in os.listdir(outdir):
                if f.endswith(".fits"):
                    os.remove(os.path.join(outdir, f))
    cen, ndrawn = central_halos(seed, area, config)
    ncen = len(cen["M500c"])
    csize = int(config.chunk_size)
    nchunks = int(np.ceil(ncen / csize))
    man = dict(params, n_halos_drawn=int(ndrawn), n_stamps=int(ncen), n_chunks=nchunks,
               chunk_size=csize, status="running", chunks={})
    if os.path.exists(mpath) and resume:
        man["chunks"] = io.read_manifest(outdir).get("chunks", {}) or {}
    io.write_manifest(mpath, man)
    todo = []
    for k in range(nchunks):
        if max_chunks is not None and k >= max_chunks:
            break
        if resume and os.path.exists(_chunk_paths(outdir, k)["detections"]):
            continue
        g = np.arange(k * csize, min((k + 1) * csize, ncen))
        sub = {kk: np.asarray(v)[g] for kk, v in cen.items()}
        todo.append((outdir, seed, k, sub, g, config, keep_events))
    bar = tqdm(total=len(todo), desc="stamps (chunks)", unit="chunk", disable=not progress)
    if workers > 1 and len(todo) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as ex:
            for res in ex.map(_chunk_job, todo):
                man["chunks"][f"c{res['chunk']:05d}"] = res
                io.write_manifest(mpath, man)
                bar.update()
    else:
        for job in todo:
            res = _chunk_job(job)
            man["chunks"][f"c{res['chunk']:05d}"] = res
            io.write_manifest(mpath, man)
            bar.update()
    bar.close()
    done = sum(os.path.exists(_chunk_paths(outdir, k)["detections"]) for k in range(nchunks))
    man["status"] = "done" if done == nchunks else f"partial ({done}/{nchunks} chunks)"
    man["selected"] = int(sum(c.get("selected", 0) for c in man["chunks"].values()))
    man["timing_s"] = {"last_call": round(time.perf_counter() - t0, 2)}
    io.write_manifest(mpath, man)
    return io.read_realisation(outdir)
