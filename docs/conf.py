"""Sphinx configuration for astro_clustermass."""

import datetime
import os
from pathlib import Path

from sphinx_astropy.conf.v2 import *  # noqa: F401,F403

import astro_clustermass

project = "astro_clustermass"
author = "astro_clustermass developers"
copyright = f"{datetime.date.today().year}, {author}"
version = release = astro_clustermass.__version__

extensions += ["sphinx_automodapi.automodapi"]  # noqa: F405
exclude_patterns = ["_build", "_intersphinx", "**.ipynb_checkpoints"]
html_theme_options = {"github_url": ""}
html_static_path = ["_static"]
automodapi_toctreedirnm = "api"
automodsumm_inherited_members = False
numpydoc_show_class_members = False
nitpicky = False
suppress_warnings = ["config.cache"]
# sphinx-astropy turns "[#NN]" in the changelog into links to github_issues_url + NN. The
# issue numbers are the project tracker's, which has no public address yet: no links.
# When it has one, set github_issues_url and drop changelog_links_docpattern.
changelog_links_docpattern = []

# -- Intersphinx ---------------------------------------------------------------------
# Links to the documentation of the packages astro_clustermass builds on. Read the Docs
# (online) fetches each inventory from its site, with the copy in _intersphinx/ as the
# fallback. Every other build (the project's machines have no network) reads only the
# copies in _intersphinx/ and leaves out the projects without one: a fetch that fails is
# a warning, which -W makes an error. ASTRO_CLUSTERMASS_DOCS_ONLINE=1 fetches here too.
# Where the copies come from and how to refresh them: _intersphinx/README.md.
_INTERSPHINX_SITES = {
    "python": "https://docs.python.org/3/",
    "numpy": "https://numpy.org/doc/stable/",
    "scipy": "https://docs.scipy.org/doc/scipy/",
    "astropy": "https://docs.astropy.org/en/stable/",
    "matplotlib": "https://matplotlib.org/stable/",
    "torch": "https://docs.pytorch.org/docs/stable/",
}
_online = (os.environ.get("READTHEDOCS") == "True"
           or os.environ.get("ASTRO_CLUSTERMASS_DOCS_ONLINE") == "1")
intersphinx_mapping = {}
for _name, _site in _INTERSPHINX_SITES.items():
    _copy = Path(__file__).parent / "_intersphinx" / f"{_name}.inv"
    if _online:
        intersphinx_mapping[_name] = (_site, (None, str(_copy)) if _copy.exists() else None)
    elif _copy.exists():
        intersphinx_mapping[_name] = (_site, str(_copy))
