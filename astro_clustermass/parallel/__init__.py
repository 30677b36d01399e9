"""Catalogue-scale mass estimation on Dask, tile by tile (`estimate_catalog`).

`tiles` cuts the sky and does the work of one tile; `runner` builds the tasks, runs
them on a Dask scheduler and assembles the table. Estimators under a time limit are
`astro_clustermass.guard`.
"""

from ..guard import EstimatorTimeout, guarded_estimate
from ..io.event_index import EventFileIndex
from .runner import estimate_catalog
from .tiles import DEFAULT_MARGIN, DEFAULT_TILE_SIZE, TileGrid

__all__ = ["estimate_catalog", "TileGrid", "EventFileIndex", "EstimatorTimeout",
           "guarded_estimate", "DEFAULT_TILE_SIZE", "DEFAULT_MARGIN"]


def _deprecated(name):
    import warnings

    from astropy.utils.exceptions import AstropyDeprecationWarning

    warnings.warn(f"astro_clustermass.parallel.{name}_guarded is deprecated: use "
                  f"astro_clustermass.{name}(..., timeout=)", AstropyDeprecationWarning,
                  stacklevel=3)


def estimate_masses_guarded(table, estimators=None, column_map=None, on_error="mask",
                            timeout=None):
    """Deprecated: `astro_clustermass.estimate_masses` with ``timeout=``."""
    from ..api import estimate_masses

    _deprecated("estimate_masses")
    return estimate_masses(table, estimators, column_map, on_error, timeout=timeout)


def add_mass_columns_guarded(table, estimators=None, column_map=None, copy=True,
                             on_error="mask", timeout=None):
    """Deprecated: `astro_clustermass.add_mass_columns` with ``timeout=``."""
    from ..api import add_mass_columns

    _deprecated("add_mass_columns")
    return add_mass_columns(table, estimators, column_map, copy, on_error, timeout=timeout)
