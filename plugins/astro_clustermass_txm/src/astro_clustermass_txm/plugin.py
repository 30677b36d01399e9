"""Entry point of the plugin: declares its estimator without importing it."""

from astro_clustermass import EstimatorSpec, hookimpl


@hookimpl
def astro_clustermass_estimators():
    return [
        EstimatorSpec(
            name="tx-arnaud07",
            factory="astro_clustermass_txm.estimator:ArnaudTXEstimator",
            inputs=("z", "T"),
            description="M500-T_X relation of Arnaud et al. 2007 (relaxed clusters)",
            version="0.1.0",
        )
    ]
