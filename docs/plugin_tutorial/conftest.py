# The fixture `estimator_registry` comes with astro_clustermass.
pytest_plugins = ["astro_clustermass.testing"]
