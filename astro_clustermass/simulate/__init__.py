"""A physically grounded mock eFEDS-like X-ray sky (see docs/simulate.rst).

Public API
----------
simulate_field(outdir, area=140, seed=0, ...)
    One contiguous field: every halo above 1e13 Msun, AGN, background, eROSITA response,
    event file, truth table, detection catalogue.
simulate_stamps(outdir, n_halos=None, area=None, seed=0, ...)
    Stamps around halos drawn over a large virtual area (training sets).
simulate_realisation(outdir, seed, mode="field", **options)
    Either of the above (the CNN data-set builder calls this).
read_realisation(outdir)
    Read an output directory: ``.truth``, ``.detections`` (matched to the truth),
    ``.events`` / ``.event_files``, ``.manifest``.
SimConfig
    Every parameter, with its source documented.
"""

from ..catalog import EFEDS_SELECTION
from .config import DEFAULT_CONFIG, SimConfig
from .field import simulate_field
from .io import Realisation, read_realisation

__all__ = ["SimConfig", "DEFAULT_CONFIG", "simulate_field", "simulate_stamps",
           "simulate_realisation", "read_realisation", "Realisation", "SELECTION"]

#: The eFEDS cluster selection used by seed 000.
SELECTION = EFEDS_SELECTION


def simulate_stamps(*args, **kwargs):
    """See `astro_clustermass.simulate.stamps.simulate_stamps`."""
    from .stamps import simulate_stamps as _f

    return _f(*args, **kwargs)


def simulate_realisation(outdir, seed=0, mode="field", **options):
    """Run one realisation in ``outdir`` (``mode``: "field" or "stamps")."""
    if mode == "field":
        return simulate_field(outdir, seed=seed, **options)
    if mode == "stamps":
        return simulate_stamps(outdir, seed=seed, **options)
    raise ValueError(f"mode must be 'field' or 'stamps', not {mode!r}")
