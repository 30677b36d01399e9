"""Where the files shipped inside the package lie."""

import os

__all__ = ["package_data"]

#: ``astro_clustermass/data``: instrument files, relations, ECF tables, CNN weights.
DATA_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def package_data(*parts):
    """The path of ``astro_clustermass/data/<parts...>`` (it need not exist).

    Parameters
    ----------
    *parts : str
        Path components below the package's ``data`` directory.

    Returns
    -------
    str
    """
    return os.path.join(DATA_ROOT, *parts)
