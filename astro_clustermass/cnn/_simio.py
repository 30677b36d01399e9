"""Glue between the package simulator / EBI builder and the CNN training data sets.

`collect_simulation` reads simulator output directories with
``astro_clustermass.simulate.read_realisation``, keeps the detections matched to a
cluster that pass the selection, and builds their EBIs from the realisation's event
files with ``astro_clustermass.ebi``. It needs both modules; until they exist it raises
an ImportError that says so (use ``scripts/train_default_ensemble.py --source interim``).
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["collect_simulation", "simulate_realisations"]


def _modules():
    try:
        from .. import ebi, simulate
    except ImportError as exc:
        raise ImportError(
            "building a CNN data set from simulator output needs astro_clustermass.simulate "
            f"and astro_clustermass.ebi, which are not available here ({exc})") from exc
    if not hasattr(simulate, "read_realisation"):
        raise ImportError("astro_clustermass.simulate has no read_realisation(outdir)")
    return simulate, ebi


def simulate_realisations(outdir, n, seed=1000, workers=1, **options):
    """Run the package simulator for ``n`` realisations into ``outdir/real_XXX``.

    Realisations whose directory already holds output are skipped. Returns the list of
    realisation directories.
    """
    simulate, _ = _modules()
    runner = getattr(simulate, "simulate_realisation", None) or getattr(simulate, "run", None)
    if runner is None:
        raise ImportError("astro_clustermass.simulate exposes no simulate_realisation()/run()")
    dirs = []
    for k in range(n):
        d = os.path.join(outdir, f"real_{k:03d}")
        if not (os.path.isdir(d) and os.listdir(d)):
            runner(d, seed=seed + k, **options)
        dirs.append(d)
    return dirs


def collect_simulation(sim_dirs, selection, ebi_parameters=None, progress=True):
    """EBIs and catalogue of the selected, cluster-matched detections of ``sim_dirs``.

    Returns
    -------
    ebi : array (N, ny, nx, nbands)
    catalog : `~astropy.table.Table`
    params : EBIParameters
    source : str
    """
    from astropy.coordinates import SkyCoord
    from astropy.table import vstack
    import astropy.units as u

    from .dataset import apply_selection

    simulate, ebi_mod = _modules()
    params = ebi_parameters or ebi_mod.EBIParameters()
    if isinstance(sim_dirs, (str, os.PathLike)):
        sim_dirs = [sim_dirs]
    images, cats = [], []
    for k, d in enumerate(sim_dirs):
        real = simulate.read_realisation(d)
        det = real.detections if hasattr(real, "detections") else real["detections"]
        events = real.events if hasattr(real, "events") else real["events"]
        matched = np.ones(len(det), bool)
        for name in ("matched", "MATCHED", "is_cluster"):
            if name in det.colnames:
                matched = np.asarray(det[name], bool)
                break
        keep = matched & apply_selection(det, selection)
        sel = det[keep]
        if len(sel) == 0:
            continue
        centers = SkyCoord(np.asarray(sel["RA"]) * u.deg, np.asarray(sel["DEC"]) * u.deg)
        images.append(np.asarray(ebi_mod.energy_band_images(events, centers, params=params),
                                 np.float32))
        sel = sel.copy()
        if "realisation" not in sel.colnames:
            sel["realisation"] = k
        cats.append(sel)
    if not cats:
        raise ValueError(f"no detection in {list(sim_dirs)} passes {selection!r}")
    return (np.concatenate(images), vstack(cats), params,
            "astro_clustermass.simulate: " + ", ".join(os.path.abspath(d) for d in sim_dirs))
