"""Optional dependencies: which extra installs which package, and one clear error.

``pip install astro_clustermass`` gives the scaling-relation estimators (astropy, numpy,
scipy, photutils, regions, pluggy, pyyaml, tqdm). The other features need an extra:

=========  ==========================================  =====================================
extra      packages                                    for
=========  ==========================================  =====================================
``cnn``    torch (CPU build), safetensors, h5py        the CNN ensemble, its training, EBI
                                                       stacks and data sets (HDF5)
``dask``   dask[distributed]                           catalogue-scale runs by sky tile
``sim``    colossus                                    the simulator; the mass-function prior
                                                       of the relations (``eddington=True``)
``plots``  matplotlib                                  figures and evaluation reports
``all``    all of the above                            ``astro-clustermass demo``
=========  ==========================================  =====================================

A feature that needs a package which is not installed raises `MissingDependencyError`
(an `ImportError`) that names the extra, through `require`.
"""

from __future__ import annotations

import importlib

__all__ = ["EXTRAS", "MissingDependencyError", "from_import_error", "require"]

#: Top-level module -> the extra of astro_clustermass that installs it.
EXTRAS = {
    "torch": "cnn",
    "safetensors": "cnn",
    "h5py": "cnn",
    "dask": "dask",
    "distributed": "dask",
    "colossus": "sim",
    "matplotlib": "plots",
}


class MissingDependencyError(ImportError):
    """A feature needs an optional package that is not installed; the message names the
    extra that installs it."""


def require(module, extra=None, feature=None):
    """Import ``module``, or raise `MissingDependencyError` naming the extra to install.

    Parameters
    ----------
    module : str
        Module to import (e.g. ``"dask"``, ``"matplotlib.pyplot"``).
    extra : str, optional
        The extra of astro_clustermass that installs it; default from `EXTRAS`.
    feature : str, optional
        What needs it, in a few words, for the message.

    Returns
    -------
    module
        The imported module.

    Examples
    --------
    >>> from astro_clustermass.utils.optional import require
    >>> require("numpy").__name__
    'numpy'
    """
    top = module.partition(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if top not in str(getattr(exc, "name", "") or exc):
            raise  # the package is there but something inside it failed to import
        raise MissingDependencyError(_message(top, extra, feature)) from exc


def from_import_error(exc, feature=None):
    """`MissingDependencyError` naming the extra for ``exc``, a `ModuleNotFoundError` of
    an optional package (one of `EXTRAS`); None for any other exception.

    The command line's safety net: a command that imports an optional package without
    `require` still tells the user which extra to install.
    """
    name = getattr(exc, "name", None) or ""
    top = name.partition(".")[0]
    if not isinstance(exc, ModuleNotFoundError) or isinstance(exc, MissingDependencyError) \
            or top not in EXTRAS:
        return None
    return MissingDependencyError(_message(top, None, feature))


def _message(top, extra, feature):
    extra = extra or EXTRAS.get(top)
    what = feature or "this feature of astro_clustermass"
    install = (f"python -m pip install 'astro_clustermass[{extra}]'" if extra
               else f"python -m pip install {top}")
    return f"{what} needs {top}, which is not installed: {install}"
