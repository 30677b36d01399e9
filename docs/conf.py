"""Sphinx configuration for astro_clustermass."""

import datetime

from sphinx_astropy.conf.v2 import *  # noqa: F401,F403

import astro_clustermass

project = "astro_clustermass"
author = "astro_clustermass developers"
copyright = f"{datetime.date.today().year}, {author}"
version = release = astro_clustermass.__version__

extensions += ["sphinx_automodapi.automodapi"]  # noqa: F405
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
html_theme_options = {"github_url": ""}
html_static_path = ["_static"]
automodapi_toctreedirnm = "api"
automodsumm_inherited_members = False
numpydoc_show_class_members = False
nitpicky = False
suppress_warnings = ["config.cache"]

# The build machines have no network: no intersphinx inventories are fetched, so
# references to numpy/astropy objects render as plain text.
intersphinx_mapping = {}
