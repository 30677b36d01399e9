"""Entry point of the plugin: light (no heavy imports), read whenever plugins are listed."""

from astropy import units as u

from astro_clustermass import EstimatorSpec, hookimpl
from astro_clustermass.catalog import ColumnSpec, register_column

# A column the package does not know: declared once, it is found by name or alias,
# converted, range-checked and masked with a reason like the built-in columns.
register_column(ColumnSpec(
    "richness", u.dimensionless_unscaled, aliases=("LAMBDA", "lambda_rm"),
    minimum=0.0, inclusive_min=False, description="optical richness (red-sequence members)"))


@hookimpl
def astro_clustermass_estimators():
    return [
        EstimatorSpec(
            name="richness-demo",
            factory="acm_richness.estimator:RichnessEstimator",
            inputs=("z", "richness"),  # the same as RichnessEstimator.inputs
            description="M500c from optical richness (tutorial; illustrative numbers)",
            version="0.1.0",
        )
    ]
