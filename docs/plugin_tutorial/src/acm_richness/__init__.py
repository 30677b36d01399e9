"""Tutorial plugin for astro_clustermass: M500c from optical richness."""

__version__ = "0.1.0"
