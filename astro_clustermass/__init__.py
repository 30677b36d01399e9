"""astro_clustermass: galaxy-cluster masses (M500c) with honest uncertainties from X-ray data.

The public API:

- `add_mass_columns` runs estimators on a catalogue and returns it with mass columns.
- `get_estimator`, `list_estimators` find estimators, built in or from plugins.
- `MassEstimator`, `MassEstimate` are the interface every estimator implements.
- `read_catalog` reads eSASS/eFEDS catalogues as they are; so do
  ``QTable.read(path, format='esass')`` (and ``'esass-ermldet'``, ``'esass-catprep'``),
  registered in `astropy.io.registry` with ``'ebi-stack'`` (`astro_clustermass.io.connect`).
- `log` is the package's logger, a child of astropy's (information; problems are
  warnings of the classes in `astro_clustermass.utils.exceptions`).
"""

from ._version import __version__
from .api import add_mass_columns, estimate_masses, get_estimator, list_estimators
from .core import EstimatorError, EstimatorSpec, MassEstimate, MassEstimator
from .io import connect as _connect  # noqa: F401 - registers the Table.read/write formats
from .registry import hookimpl
from .utils.logger import log

__all__ = [
    "__version__", "add_mass_columns", "estimate_masses", "get_estimator",
    "list_estimators", "MassEstimate", "MassEstimator", "EstimatorSpec",
    "EstimatorError", "hookimpl", "log",
]
