"""Simulator output -> CNN training data set (`build_dataset`).

Two sources of training images:

- survey **fields** (`simulate_fields`: one `astro_clustermass.simulate.simulate_field`
  per chunk, a field of a given area with its own seed): the clusters are detected in
  the field, with their real neighbours, the field's exposure and background, and their
  EBIs are cut from the field's event file, as a user's would be;
- **stamps** (`simulate_realisations`: `astro_clustermass.simulate.simulate_stamps`
  chunk by chunk): a square around each pre-selected halo, with Poisson neighbours, an
  exposure drawn from an eFEDS-like map, detection on the stamp.

Both run resumably and with an optional wall-clock limit; `collect_simulation` reads
their output directories with ``astro_clustermass.simulate.read_realisation``, keeps the
detections matched to a halo (in stamps: the stamp's central halo) that pass the
selection, and builds their EBIs at the *detected* positions from the realisation's
event files with `astro_clustermass.ebi.energy_band_images`. The catalogue carries the
TRUE ``M500c``, ``z``, ``LX`` and ``T`` of the matched halo, read from the truth tables.
"""

from __future__ import annotations

import dataclasses
import datetime
import glob
import logging
import os

import numpy as np

from ..catalog import EFEDS_SELECTION

__all__ = ["build_dataset", "collect_simulation", "simulate_realisations", "simulate_fields",
           "make_training_set", "training_config"]

log = logging.getLogger("astro_clustermass")


def training_config(log10_mmin=None, **changes):
    """The simulator configuration of a training set: `DEFAULT_CONFIG` with changes.

    Parameters
    ----------
    log10_mmin : float, optional
        Lower limit of the halo mass function, log10(M500c / Msun) (default: the
        simulator's, 13.0). Raising it (the default ensemble uses 13.3) saves simulation
        time: only a few per cent of the clusters that pass the selection lie below it
        (measured in docs/cnn.rst). It applies to every halo of the stamps, neighbours
        included.
    **changes
        Other `SimConfig` fields.
    """
    from ..simulate import DEFAULT_CONFIG

    if log10_mmin is not None:
        changes["log10_mmin"] = float(log10_mmin)
    return dataclasses.replace(DEFAULT_CONFIG, **changes) if changes else DEFAULT_CONFIG


def _utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def _parse_until(until):
    if isinstance(until, str):
        hh, mm = (int(v) for v in until.split(":"))
        return _utc_now().replace(hour=hh, minute=mm, second=0, microsecond=0)
    return until


def _should_stop(outdir, until):
    """Why no new chunk should start (``touch OUTDIR/STOP`` or the time limit), or None."""
    if os.path.exists(os.path.join(outdir, "STOP")):
        return "STOP file"
    if until is not None and _utc_now() >= until:
        return f"time limit {until:%H:%M} UTC"
    return None


def simulate_fields(outdir, n, area=10.0, seed=2000, config=None, workers=1, until=None,
                    progress=True, report=None, chunk_config=None):
    """Simulate ``n`` survey fields into ``outdir/field_XXX`` (the field chunks of a
    training set).

    Field *k* is `astro_clustermass.simulate.simulate_field` with ``area`` deg^2 and
    seed ``seed + k`` at the simulator's default (eFEDS) centre: fields of different
    seeds are independent skies. Finished fields are not
    redone (resume by calling again with the same arguments); no new field is started
    after ``until`` or once ``outdir/STOP`` exists.

    Parameters
    ----------
    outdir : str
    n : int
        Number of fields (chunks).
    area : float
        Area of each field [deg^2].
    seed : int
    config : SimConfig, optional
        Default: `training_config()`.
    workers : int
        Processes for each field's detection.
    until : datetime or str, optional
        See `simulate_realisations`.
    progress : bool
        The simulator's own progress bars.
    report : callable, optional
        Called as ``report(k + 1, n, directory, manifest, seconds)`` after field *k*
        (``seconds`` is None for a field found finished).
    chunk_config : callable, optional
        ``chunk_config(k)`` -> the `SimConfig` of field *k* (e.g. a draw from the simulator
        priors, `astro_clustermass.cnn.priors`); default ``config`` for every field.

    Returns
    -------
    list of str
        The directories of the finished fields.
    """
    import time

    from ..simulate import simulate_field

    config = config or training_config()
    until = _parse_until(until)
    dirs = []
    for k in range(n):
        d = os.path.join(outdir, f"field_{k:03d}")
        done = os.path.exists(os.path.join(d, "detections.fits"))
        why = None if done else _should_stop(outdir, until)
        if why:
            log.info("simulate_fields: stopping (%s)", why)
            break
        t0 = time.perf_counter()
        cfg = config if chunk_config is None else chunk_config(k)
        real = simulate_field(d, area=area, seed=seed + k, config=cfg, progress=progress,
                              workers=workers)
        dirs.append(d)
        if report is not None:
            report(k + 1, n, d, real.manifest, None if done else time.perf_counter() - t0)
    return dirs


def simulate_realisations(outdir, n, seed=1000, workers=1, n_halos=20_000, config=None,
                          until=None, max_chunks=None, chunks_per_call=1, progress=True,
                          report=None, chunk_config=None):
    """Run the stamp-mode simulator for ``n`` realisations into ``outdir/real_XXX``.

    Realisation *k* is `astro_clustermass.simulate.simulate_stamps` with ``seed + k``,
    ``n_halos`` stamps and ``keep_events="selected"``. The work is done
    ``chunks_per_call`` chunks at a time; chunks already on disk are skipped (resume by
    calling again with the same arguments), and no new chunk is started after ``until``.

    Parameters
    ----------
    outdir : str
    n : int
        Number of realisations.
    seed : int
    workers : int
        Processes per chunk batch.
    n_halos : int
        Stamps (central halos) per realisation.
    config : SimConfig, optional
        Default: `training_config()`.
    until : datetime or str, optional
        Wall-clock limit (aware datetime, or ``"HH:MM"`` UTC today): chunks are not
        started after it, so a data set can be built in a fixed time. The realisations
        are then partial; `collect_simulation` uses the chunks that are complete.
    max_chunks : int or list of int, optional
        Simulate at most this many chunks per realisation (chunks are random subsets of
        the stamps, so the first ones are a fair sample of the whole); a list gives one
        limit per realisation.
    chunks_per_call : int
    progress : bool
    report : callable, optional
        Called as ``report(done_chunks, planned_chunks, directory, manifest, seconds)``
        after each call of the simulator.
    chunk_config : callable, optional
        ``chunk_config(k)`` -> the `SimConfig` of realisation *k* (all its chunks: the
        stamp simulator takes one configuration per realisation); default ``config``.

    Returns
    -------
    list of str
        The realisation directories that hold at least one finished chunk.
    """
    import time

    from .. import simulate
    config = config or training_config()
    until = _parse_until(until)
    dirs = []
    limits = list(max_chunks) if isinstance(max_chunks, (list, tuple)) else [max_chunks] * n
    for k in range(n):
        d = os.path.join(outdir, f"real_{k:03d}")
        max_chunks = limits[k]
        # chunks already on disk (their detection file is written last)
        done_chunks = 0
        while os.path.exists(os.path.join(d, f"detections_c{done_chunks:05d}.fits")):
            done_chunks += 1
        while True:
            why = _should_stop(outdir, until)
            if why:
                log.info("simulate: stopping (%s)", why)
                break
            if max_chunks is not None and done_chunks >= max_chunks:
                break
            done_chunks += max(1, int(chunks_per_call))
            if max_chunks is not None:
                done_chunks = min(done_chunks, int(max_chunks))
            t0 = time.perf_counter()
            cfg = config if chunk_config is None else chunk_config(k)
            real = simulate.simulate_stamps(d, n_halos=n_halos, seed=seed + k, config=cfg,
                                            workers=workers, keep_events="selected",
                                            max_chunks=done_chunks, progress=progress)
            man = real.manifest
            log.info("simulate: %s: %s, %s selected", d, man.get("status"), man.get("selected"))
            if report is not None:
                planned = man.get("n_chunks", 0) if max_chunks is None else \
                    min(int(max_chunks), man.get("n_chunks", max_chunks))
                report(min(done_chunks, planned), planned, d, man, time.perf_counter() - t0)
            if man.get("status") == "done" or done_chunks >= man.get("n_chunks", 0):
                break
        if glob.glob(os.path.join(d, "detections*.fits")):
            dirs.append(d)
        if _should_stop(outdir, until):
            break
    return dirs


def _plain_column(col, unit=None):
    """A masked/quantity column -> float array (NaN where masked), in ``unit``."""
    import astropy.units as u

    if unit is not None and isinstance(col, u.Quantity):
        col = col.to(unit)
    values = np.ma.filled(np.ma.masked_invalid(np.ma.asarray(getattr(col, "value", col),
                                                                   dtype=float)), np.nan)
    return np.asarray(values, float)


def collect_simulation(sim_dirs, selection, ebi_parameters=None, progress=True, record=()):
    """EBIs and catalogue of the selected, cluster-matched detections of ``sim_dirs``.

    For every finished chunk of every realisation directory: the detections matched to
    a halo that pass ``selection`` (in stamps, only the stamp's central halo:
    ``MATCHED & central``; in a field every halo is central), one per halo (the one with
    the highest ``DET_LIKE`` when a halo is detected twice); their EBIs are built at the
    detected ``RA, DEC`` from the chunk's event file. Neighbour halos near a stamp edge
    are not used: their photons are cut by the stamp border. In a field, clusters near
    its edge are kept, with the part of the image outside the field empty, as in a
    survey's catalogue.

    Parameters
    ----------
    sim_dirs : str or list of str
        Output directories of `astro_clustermass.simulate.simulate_stamps` or
        `~astro_clustermass.simulate.simulate_field` (both kinds may be mixed).
    selection : str
        See `astro_clustermass.catalog.selection_mask`.
    ebi_parameters : EBIParameters, optional
    progress : bool
        tqdm progress bar over chunks.
    record : sequence of str
        `SimConfig` fields to copy to every cluster from its realisation's manifest, as
        columns ``sim_NAME`` (the simulator parameters its sky was made with, e.g. the
        prior draws of `make_training_set`).

    Returns
    -------
    ebi : array (N, ny, nx, nbands)
    catalog : `~astropy.table.Table`
        ``RA, DEC`` (detected, deg), ``DET_LIKE``, ``EXT_LIKE``, ``ML_RATE``,
        ``ML_RATE_ERR`` (ct/s), the true ``M500c`` (Msun), ``z``, ``LX`` (erg/s, rest
        0.5-2 keV within R500), ``T`` (keV) and ``RA_true``, ``DEC_true`` of the halo,
        ``realisation``, ``cluster_id`` (``HALO_ID``), ``chunk``, ``STAMP``, and
        ``sim_NAME`` for each field of ``record``.
    params : EBIParameters
    source : str
    """
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from astropy.table import Table
    from tqdm.auto import tqdm

    from .. import simulate
    from ..catalog import selection_mask
    from ..ebi import EBIParameters, energy_band_images
    from ..io.events import EventList

    params = ebi_parameters or EBIParameters()
    if isinstance(sim_dirs, (str, os.PathLike)):
        sim_dirs = [sim_dirs]
    sim_dirs = [str(d) for d in sim_dirs]
    reals = [simulate.read_realisation(d) for d in sim_dirs]
    jobs = []
    for k, real in enumerate(reals):
        det = real.detections
        matched = np.asarray(det["MATCHED"], bool)
        central = np.asarray(np.ma.filled(np.ma.asarray(det["central"]), False), bool) \
            if "central" in det.colnames else np.ones(len(det), bool)
        keep = matched & central & selection_mask(det, selection)
        for f in real.event_files:
            tag = os.path.basename(f)[len("events"):-len(".fits")]
            rows = np.flatnonzero(keep & (np.asarray(det["CHUNK_TAG"]) == tag))
            if rows.size:
                jobs.append((k, tag, f, rows))
    images, cats = [], []
    n_dup = 0
    for k, tag, f, rows in tqdm(jobs, desc="EBIs (chunks)", unit="chunk", disable=not progress):
        real = reals[k]
        det = real.detections[rows]
        # one detection per halo: the most significant
        order = np.lexsort((-np.asarray(det["DET_LIKE"], float), np.asarray(det["HALO_ID"])))
        halo = np.asarray(det["HALO_ID"])[order]
        first = np.ones(len(order), bool)
        first[1:] = halo[1:] != halo[:-1]
        n_dup += int((~first).sum())
        det = det[np.sort(order[first])]
        # true properties from the truth table (by halo id)
        truth = real.truth
        tidx = {int(h): i for i, h in enumerate(np.asarray(truth["HALO_ID"]))}
        ti = np.array([tidx[int(h)] for h in np.asarray(det["HALO_ID"])], int)
        cat = Table()
        cat["RA"] = _plain_column(det["RA"], u.deg) * u.deg
        cat["DEC"] = _plain_column(det["DEC"], u.deg) * u.deg
        for name in ("DET_LIKE", "EXT_LIKE"):
            cat[name] = _plain_column(det[name])
        for name in ("ML_RATE", "ML_RATE_ERR"):
            cat[name] = _plain_column(det[name], u.ct / u.s) * (u.ct / u.s)
        cat["M500c"] = _plain_column(truth["M500c"][ti], u.Msun) * u.Msun
        cat["z"] = _plain_column(truth["z"][ti])
        cat["LX"] = _plain_column(truth["LX"][ti], u.erg / u.s) * (u.erg / u.s)
        if "T" in truth.colnames:
            cat["T"] = _plain_column(truth["T"][ti], u.keV) * u.keV
        cat["RA_true"] = _plain_column(truth["RA"][ti], u.deg) * u.deg
        cat["DEC_true"] = _plain_column(truth["DEC"][ti], u.deg) * u.deg
        cat["realisation"] = np.full(len(det), k, np.int32)
        cat["cluster_id"] = np.asarray(det["HALO_ID"]).astype(np.int64)
        cat["chunk"] = np.full(len(det), tag)
        if "STAMP" in det.colnames:
            cat["STAMP"] = np.asarray(det["STAMP"]).astype(np.int64)
        used = real.manifest.get("config", {})
        for name in record:
            if name not in used:
                raise ValueError(f"{real.outdir}: its manifest does not record the simulator "
                                 f"parameter {name!r}")
            cat[f"sim_{name}"] = np.full(len(det), float(used[name]))
        centers = SkyCoord(np.asarray(cat["RA"]) * u.deg, np.asarray(cat["DEC"]) * u.deg)
        events = EventList.read(f)
        images.append(np.asarray(energy_band_images(events, centers, params=params,
                                                    progress=False), np.float32))
        cats.append(cat)
    if not cats:
        raise ValueError(f"no central-halo detection in {sim_dirs} passes {selection!r}")
    from astropy.table import vstack

    catalog = vstack(cats)
    if n_dup:
        log.info("collect_simulation: dropped %d repeated detections of a halo", n_dup)
    catalog.meta.clear()
    mmin = sorted({r.manifest.get("config", {}).get("log10_mmin") for r in reals},
                  key=str)
    chunks = sum(len(glob.glob(os.path.join(d, "detections*.fits"))) for d in sim_dirs)
    modes = sorted({str(r.manifest.get("mode", "stamps")) for r in reals})
    if modes == ["field"]:
        area = sum(float(r.manifest.get("area_deg2", 0.0)) for r in reals)
        what = f"{len(reals)} fields, {area:g} deg^2 in all; halos"
    else:
        what = (f"{chunks} chunks of {reals[0].manifest.get('chunk_size')} stamps; "
                "central halos")
    source = (f"astro_clustermass.simulate {' + '.join(modes)} mode: "
              + "; ".join(f"{os.path.abspath(r.outdir)} (seed {r.manifest.get('seed')}, "
                          f"{r.manifest.get('status')})" for r in reals)
              + f"; {what} matched and passing the selection, one detection per halo "
              f"({len(catalog)} clusters); log10_mmin {', '.join(str(m) for m in mmin)}")
    return np.concatenate(images), catalog, params, source


def build_dataset(sim_dir, out_path, selection=EFEDS_SELECTION, ebi_parameters=None,
                  overwrite=False, progress=True):
    """Build a training data set from a simulator output directory.

    Reads the stamp-mode realisation(s) in ``sim_dir`` with
    `astro_clustermass.simulate.read_realisation`, keeps the detections matched to the
    central halo of a stamp that pass ``selection`` (one per halo), takes the halo's true
    ``M500c``, ``z``, ``LX`` and ``T`` from the truth tables, builds the EBIs from the
    simulated event files with `astro_clustermass.ebi` centred on the detected position,
    and writes `~astro_clustermass.cnn.dataset.write_dataset`'s format to ``out_path``
    (see `collect_simulation`).

    Parameters
    ----------
    sim_dir : str or list of str
        Simulator output directory (or several, e.g. one per realisation).
    out_path : str
    selection : str
        See `astro_clustermass.catalog.selection_mask`.
    ebi_parameters : EBIParameters, optional
        Default: ``EBIParameters()`` (the seed's).
    overwrite, progress : bool
    """
    from .dataset import write_dataset

    ebi, catalog, params, source = collect_simulation(
        sim_dir, selection=selection, ebi_parameters=ebi_parameters, progress=progress)
    write_dataset(out_path, ebi, catalog, ebi_parameters=params, selection=selection,
                  source=source, overwrite=overwrite)
    log.info("wrote %d clusters to %s", len(catalog), out_path)
    return out_path


def _check_settings(work_dir, settings):
    """Record the settings of a work directory; refuse to resume it with others.

    A simulator parameter that the recorded settings do not have (one added to
    `~astro_clustermass.simulate.SimConfig` after the directory was started) counts as
    its default there: the run then differs only if it is set to something else now.
    """
    import json

    from ..io.atomic import atomic_write_text
    from ..simulate.config import SimConfig

    path = os.path.join(work_dir, "settings.json")
    plain = json.loads(json.dumps(settings, default=str))
    if os.path.exists(path):
        with open(path) as fh:
            old = json.load(fh)
        if isinstance(old.get("config"), dict) and isinstance(plain.get("config"), dict):
            defaults = json.loads(json.dumps(SimConfig().to_dict(), default=str))
            old["config"] = {**{k: v for k, v in defaults.items() if k in plain["config"]},
                             **old["config"]}
        diffs = []
        for k in plain:
            if k in ("chunks", "output") or old.get(k) == plain[k]:
                continue
            if isinstance(plain[k], dict) and isinstance(old.get(k), dict):
                diffs += [f"{k}.{f}: {old[k].get(f)!r} there, {plain[k].get(f)!r} now"
                          for f in sorted(set(plain[k]) | set(old[k]))
                          if old[k].get(f) != plain[k].get(f)]
            else:
                diffs.append(f"{k}: {old.get(k)!r} there, {plain[k]!r} now")
        if diffs:
            raise ValueError(f"{work_dir} was started with other settings ("
                             + "; ".join(diffs) + "); use another work directory")
    os.makedirs(work_dir, exist_ok=True)
    atomic_write_text(path, json.dumps(plain, indent=1))


def _record_draws(work_dir, priors, config, seed, mode, chunks, stamps_per_realisation,
                  per_draw=1):
    """Write ``work_dir/prior_draws.json`` (draw *d* for fields / stamp realisations
    ``d * per_draw`` to ``(d + 1) * per_draw - 1``) and return ``k -> SimConfig`` of
    field / realisation *k*."""
    import json

    from ..io.atomic import atomic_write_text

    n = chunks if mode == "field" else \
        -(-chunks // max(1, stamps_per_realisation // int(config.chunk_size)))
    draws = {d: priors.draw(seed, d) for d in range(-(-n // per_draw))}
    record = {"priors": priors.meta.get("name", ""), "seed": int(seed),
              "unit": "field" if mode == "field" else "stamp realisation",
              "per_draw": per_draw,
              "draws": [{"draw": d, "chunks": list(range(d * per_draw, min(n, (d + 1) * per_draw))),
                         "sky_seeds": [int(seed) + k for k in
                                       range(d * per_draw, min(n, (d + 1) * per_draw))],
                         "values": v, "n_sigma": priors.n_sigma(v)} for d, v in draws.items()]}
    atomic_write_text(os.path.join(work_dir, "prior_draws.json"), json.dumps(record, indent=1))
    return lambda k: priors.apply(config, draws.get(k // per_draw)
                                  or priors.draw(seed, k // per_draw))


def make_training_set(work_dir, out_path, mode="field", chunks=10, seed=2000, config=None,
                      area=10.0, stamps_per_realisation=40_000, workers=1, until=None,
                      selection=EFEDS_SELECTION, ebi_parameters=None, progress=True,
                      report=None, overwrite=False, priors=None, chunks_per_draw=1):
    """Simulate a training sky chunk by chunk in ``work_dir`` and write the data set.

    The whole of ``astro-clustermass dataset``: `simulate_fields` (``mode="field"``:
    ``chunks`` fields of ``area`` deg^2 in ``work_dir/sim/field_XXX``) or
    `simulate_realisations` (``mode="stamps"``: ``chunks`` chunks of ``chunk_size``
    stamps, in realisations of ``stamps_per_realisation`` stamps, ``work_dir/sim/
    real_XXX``), then `build_dataset` from the finished chunks to ``out_path``.
    Resumable: calling again with the same arguments (``chunks`` may grow) skips the
    finished chunks; ``work_dir/settings.json`` records the settings and a call with
    other ones (mode, seed, area, simulator configuration, selection) is refused.

    Parameters
    ----------
    work_dir, out_path : str
    mode : {"field", "stamps"}
    chunks : int
    seed : int
        Field k / stamp realisation k is seeded with ``seed + k``.
    config : SimConfig, optional
        Default `training_config()`.
    area : float
        Field mode: area of each field [deg^2].
    stamps_per_realisation : int
        Stamps mode: stamps of each realisation (fixed, so that more chunks continue it).
    workers : int
    until : datetime or str, optional
        Start no chunk after this time (``"HH:MM"`` UTC); the data set is then built from
        the finished chunks and says so in its ``source`` attribute.
    selection : str
    ebi_parameters : EBIParameters, optional
    progress : bool
        The simulator's and the EBI builder's progress bars.
    report : callable, optional
        ``report(done, planned, directory, manifest, seconds)`` after each chunk.
    overwrite : bool
        Replace ``out_path`` if it exists and was not written from this work directory.
    priors : `~astro_clustermass.cnn.priors.SimulatorPriors` or str, optional
        Simulator priors (or a priors file, ``"default"`` for the shipped one): chunk *k*
        (field *k*; in stamps mode realisation *k*, all of its chunks) is simulated with
        ``config`` changed by the draw ``priors.draw(seed, k // chunks_per_draw)``. The
        draws are written to ``work_dir/prior_draws.json`` (values, prior sigmas and
        chunks per draw), the priors to the settings, and every cluster of the data set
        carries its sky's parameters as columns ``sim_NAME`` and its draw as
        ``sim_draw``.
    chunks_per_draw : int
        Fields (stamp realisations) that share one draw (default 1: each its own), e.g.
        to train ensemble members on one draw each (docs/cnn.rst).

    Returns
    -------
    dict
        ``path``, ``chunks_done``, ``chunks_planned``, ``clusters``.
    """
    import json

    from .dataset import read_dataset, write_dataset

    if mode not in ("field", "stamps"):
        raise ValueError(f"mode must be 'field' or 'stamps', not {mode!r}")
    if int(chunks) < 1:
        raise ValueError(f"chunks must be >= 1, not {chunks}")
    config = config or training_config()
    work_dir = os.path.abspath(work_dir)
    if isinstance(priors, (str, os.PathLike)):
        from .priors import SimulatorPriors

        priors = SimulatorPriors.read(priors)
    settings = {"mode": mode, "seed": int(seed), "config": config.to_dict(),
                "selection": selection, "chunks": int(chunks), "output": out_path,
                "ebi_parameters": None if ebi_parameters is None else
                ebi_parameters.to_dict()}
    if mode == "field":
        settings["area_deg2"] = float(area)
    else:
        settings["stamps_per_realisation"] = int(stamps_per_realisation)
    if priors is not None:
        settings["priors"] = priors.to_dict()
        settings["chunks_per_draw"] = int(chunks_per_draw)
        if int(chunks_per_draw) < 1:
            raise ValueError(f"chunks_per_draw must be >= 1, not {chunks_per_draw}")
    if os.path.exists(out_path) and not overwrite:
        made_here = False
        try:
            made_here = f"work directory {work_dir}" in read_dataset(out_path).attrs.get(
                "source", "")
        except (OSError, KeyError, ValueError):
            pass
        if not made_here:
            raise ValueError(f"{out_path} exists and was not made from {work_dir}; "
                             "pass overwrite=True (--overwrite) to replace it")
    _check_settings(work_dir, settings)
    sim = os.path.join(work_dir, "sim")
    os.makedirs(sim, exist_ok=True)
    chunk_config = None
    if priors is not None:
        chunk_config = _record_draws(work_dir, priors, config, seed, mode, int(chunks),
                                     int(stamps_per_realisation), int(chunks_per_draw))
    if mode == "field":
        dirs = simulate_fields(sim, int(chunks), area=area, seed=seed, config=config,
                               workers=workers, until=until, progress=progress,
                               report=report, chunk_config=chunk_config)
        done = len(dirs)
    else:
        per = max(1, int(stamps_per_realisation) // int(config.chunk_size))
        n_real = -(-int(chunks) // per)
        limits = [min(per, int(chunks) - k * per) for k in range(n_real)]
        dirs = simulate_realisations(sim, n_real, seed=seed, workers=workers,
                                     n_halos=stamps_per_realisation, config=config,
                                     until=until, max_chunks=limits, progress=progress,
                                     chunks_per_call=max(1, 2 * int(workers)), report=report,
                                     chunk_config=chunk_config)
        done = sum(len(glob.glob(os.path.join(d, "detections_c*.fits"))) for d in dirs)
    if not dirs:
        raise ValueError(f"no finished chunk in {sim} to build a data set from")
    ebi, catalog, params, source = collect_simulation(
        dirs, selection=selection, ebi_parameters=ebi_parameters, progress=progress,
        record=() if priors is None else priors.names)
    if priors is not None:
        # the draw of field k, or of stamp realisation k (k: the index of its directory)
        catalog["sim_draw"] = np.asarray(
            [int(os.path.basename(dirs[k]).split("_")[-1]) // int(chunks_per_draw)
             for k in catalog["realisation"]], np.int32)
        source += (f"; simulator priors {priors.meta.get('name', '')!r} drawn per "
                   f"{'field' if mode == 'field' else 'realisation'} (columns sim_*, "
                   f"{os.path.join(work_dir, 'prior_draws.json')})")
    source += (f"; {done} of {int(chunks)} planned chunks; work directory {work_dir}; "
               f"settings {json.dumps(settings, default=str, sort_keys=True)}")
    write_dataset(out_path, ebi, catalog, ebi_parameters=params, selection=selection,
                  source=source, overwrite=True)
    log.info("wrote %d clusters to %s", len(catalog), out_path)
    return {"path": out_path, "chunks_done": done, "chunks_planned": int(chunks),
            "clusters": len(catalog)}
