"""The estimator: a power law in richness (illustrative numbers, not a calibration)."""

import numpy as np

from astro_clustermass import MassEstimator


class RichnessEstimator(MassEstimator):
    """M500c = 10^log10_m40 (richness / 40)^slope Msun, with a log-normal scatter.

    The default numbers only illustrate the interface; they are not a published
    calibration.
    """

    name = "richness-demo"
    inputs = ("z", "richness")  # canonical columns; rows lacking them are masked for us
    version = "0.1.0"
    description = "M500c from optical richness (tutorial; illustrative numbers)"

    def __init__(self, log10_m40=14.3, slope=1.1, scatter_dex=0.12):
        self.log10_m40 = float(log10_m40)
        self.slope = float(slope)
        self.scatter_dex = float(scatter_dex)

    def parameters(self):
        return {"log10_m40": self.log10_m40, "slope": self.slope,
                "scatter_dex": self.scatter_dex}

    def _estimate(self, catalog):
        # catalog["richness"]: a Quantity in the column's unit, NaN where the row is
        # unusable (catalog.row_valid is False there, with the reason already written).
        richness = catalog["richness"].value
        n = len(catalog)
        mu = self.log10_m40 + self.slope * np.log10(richness / 40.0)
        sigma = np.full(n, self.scatter_dex)
        valid = np.isfinite(mu)
        # a reason for a row without an estimate, or a warning for a valid one; '' if clean
        reason = np.where(richness < 20, "richness below 20: extrapolated", "")
        return mu, sigma, valid, reason
