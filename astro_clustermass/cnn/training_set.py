"""Simulator output -> CNN training data set (`build_dataset`).

`simulate_realisations` runs the stamp-mode simulator (`astro_clustermass.simulate.
simulate_stamps`) chunk by chunk, resumably and with an optional wall-clock limit;
`collect_simulation` reads its output directories with
``astro_clustermass.simulate.read_realisation``, keeps the detections of the central
halo of each stamp that are matched to it and pass the selection, and builds their EBIs
at the *detected* positions from the realisation's event files with
`astro_clustermass.ebi.energy_band_images`. The catalogue carries the TRUE ``M500c``,
``z``, ``LX`` and ``T`` of the matched halo, read from the truth tables.
"""

from __future__ import annotations

import dataclasses
import datetime
import glob
import logging
import os

import numpy as np

from ..catalog import EFEDS_SELECTION

__all__ = ["build_dataset", "collect_simulation", "simulate_realisations", "training_config"]

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


def simulate_realisations(outdir, n, seed=1000, workers=1, n_halos=20_000, config=None,
                          until=None, max_chunks=None, chunks_per_call=1, progress=True):
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
    max_chunks : int, optional
        Simulate at most this many chunks per realisation (chunks are random subsets of
        the stamps, so the first ones are a fair sample of the whole).
    chunks_per_call : int
    progress : bool

    Returns
    -------
    list of str
        The realisation directories that hold at least one finished chunk.
    """
    from .. import simulate
    config = config or training_config()
    if isinstance(until, str):
        hh, mm = (int(v) for v in until.split(":"))
        until = _utc_now().replace(hour=hh, minute=mm, second=0, microsecond=0)
    stop_file = os.path.join(outdir, "STOP")
    dirs = []
    for k in range(n):
        d = os.path.join(outdir, f"real_{k:03d}")
        # chunks already on disk (their detection file is written last)
        done_chunks = 0
        while os.path.exists(os.path.join(d, f"detections_c{done_chunks:05d}.fits")):
            done_chunks += 1
        while True:
            if os.path.exists(stop_file) or (until is not None and _utc_now() >= until):
                log.info("simulate: stopping (%s)", "STOP file" if os.path.exists(stop_file)
                         else f"time limit {until:%H:%M} UTC")
                break
            if max_chunks is not None and done_chunks >= max_chunks:
                break
            done_chunks += max(1, int(chunks_per_call))
            if max_chunks is not None:
                done_chunks = min(done_chunks, int(max_chunks))
            real = simulate.simulate_stamps(d, n_halos=n_halos, seed=seed + k, config=config,
                                            workers=workers, keep_events="selected",
                                            max_chunks=done_chunks, progress=progress)
            man = real.manifest
            log.info("simulate: %s: %s, %s selected", d, man.get("status"), man.get("selected"))
            if man.get("status") == "done" or done_chunks >= man.get("n_chunks", 0):
                break
        if glob.glob(os.path.join(d, "detections*.fits")):
            dirs.append(d)
        if (os.path.exists(stop_file) or (until is not None and _utc_now() >= until)):
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


def collect_simulation(sim_dirs, selection, ebi_parameters=None, progress=True):
    """EBIs and catalogue of the selected, cluster-matched detections of ``sim_dirs``.

    For every finished chunk of every realisation directory: the detections matched to
    the stamp's central halo (``MATCHED & central``) that pass ``selection``, one per
    halo (the one with the highest ``DET_LIKE`` when a halo is detected twice); their
    EBIs are built at the detected ``RA, DEC`` from the chunk's event file. Neighbour
    halos near a stamp edge are not used: their photons are cut by the stamp border.

    Parameters
    ----------
    sim_dirs : str or list of str
        Output directories of `astro_clustermass.simulate.simulate_stamps`.
    selection : str
        See `astro_clustermass.catalog.selection_mask`.
    ebi_parameters : EBIParameters, optional
    progress : bool
        tqdm progress bar over chunks.

    Returns
    -------
    ebi : array (N, ny, nx, nbands)
    catalog : `~astropy.table.Table`
        ``RA, DEC`` (detected, deg), ``DET_LIKE``, ``EXT_LIKE``, ``ML_RATE``,
        ``ML_RATE_ERR`` (ct/s), the true ``M500c`` (Msun), ``z``, ``LX`` (erg/s, rest
        0.5-2 keV within R500), ``T`` (keV) and ``RA_true``, ``DEC_true`` of the halo,
        ``realisation``, ``cluster_id`` (``HALO_ID``), ``chunk``, ``STAMP``.
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
    source = ("astro_clustermass.simulate stamps mode: "
              + "; ".join(f"{os.path.abspath(r.outdir)} (seed {r.manifest.get('seed')}, "
                          f"{r.manifest.get('status')})" for r in reals)
              + f"; {chunks} chunks of {reals[0].manifest.get('chunk_size')} stamps; "
              f"log10_mmin {', '.join(str(m) for m in mmin)}; central halos matched and "
              f"passing the selection, one detection per halo ({len(catalog)} clusters)")
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
