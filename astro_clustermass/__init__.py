"""astro_clustermass: galaxy-cluster masses (M500c) with honest uncertainties from X-ray data.

The public API:

- `add_mass_columns` runs estimators on a catalogue and returns it with mass columns.
- `get_estimator`, `list_estimators` find estimators, built in or from plugins.
- `MassEstimator`, `MassEstimate` are the interface every estimator implements.
- `read_catalog` reads eSASS/eFEDS catalogues as they are.
"""

from ._version import __version__
from .api import add_mass_columns, estimate_masses, get_estimator, list_estimators
from .core import EstimatorError, EstimatorSpec, MassEstimate, MassEstimator
from .registry import hookimpl

__all__ = [
    "__version__", "add_mass_columns", "estimate_masses", "get_estimator",
    "list_estimators", "MassEstimate", "MassEstimator", "EstimatorSpec",
    "EstimatorError", "hookimpl",
]
