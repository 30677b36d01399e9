"""astro_clustermass: galaxy-cluster masses (M500c) with honest uncertainties from X-ray data.

The public API:

- `add_mass_columns` runs estimators on a catalogue and returns it with mass columns.
- `get_estimator`, `list_estimators` find estimators, built in or from plugins.
- `MassEstimator`, `MassEstimate` are the interface every estimator implements.
"""

from ._version import __version__
from .core import EstimatorError, EstimatorSpec, MassEstimate, MassEstimator

__all__ = ["__version__", "MassEstimate", "MassEstimator", "EstimatorSpec", "EstimatorError"]
