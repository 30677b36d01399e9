"""Example astro_clustermass plugin: the Arnaud et al. (2007) M500-T_X relation."""

__version__ = "0.1.0"
