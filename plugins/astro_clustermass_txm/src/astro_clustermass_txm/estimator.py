"""The Arnaud, Pointecouteau & Pratt (2007) M500-T_X relation as a mass estimator."""

import numpy as np
from astropy.cosmology import FlatLambdaCDM

from astro_clustermass import MassEstimator

__all__ = ["ArnaudTXEstimator"]


class ArnaudTXEstimator(MassEstimator):
    """M500c from the X-ray temperature: h(z) M500 = 10^14.580 (T / 5 keV)^1.71 Msun.

    Arnaud, Pointecouteau & Pratt 2007, A&A 474, L37 (doi:10.1051/0004-6361:20078541),
    h70 = 1 (H0 = 70 km/s/Mpc, Om = 0.3) so masses are h-free for that cosmology.
    The log10 M sigma combines the intrinsic scatter (0.039 dex) and the temperature
    error ``T_err`` (if given) through the slope. Temperatures outside the calibrated
    2-9 keV or redshifts above 0.15 get an estimate and a warning in the flag column.
    """

    name = "tx-arnaud07"
    inputs = ("z", "T")
    optional_inputs = ("T_err",)
    version = "0.1.0"
    reference = "Arnaud, Pointecouteau & Pratt 2007, A&A 474, L37, doi:10.1051/0004-6361:20078541"
    description = "M500-T_X relation of Arnaud et al. 2007 (relaxed clusters)"

    log10_norm = 14.580  # log10(M500 / h70^-1 Msun) at T = 5 keV, z = 0
    slope = 1.71
    pivot_keV = 5.0
    scatter_dex = 0.039
    valid_T_keV = (2.0, 9.0)
    valid_z_max = 0.15

    def __init__(self, cosmology=None):
        self.cosmology = cosmology or FlatLambdaCDM(H0=70, Om0=0.3, name="Arnaud07")

    def parameters(self):
        return {"log10_norm": self.log10_norm, "slope": self.slope,
                "pivot_keV": self.pivot_keV, "scatter_dex": self.scatter_dex}

    def _estimate(self, catalog):
        z = catalog["z"].value
        t_kev = catalog["T"].to_value("keV")
        n = len(catalog)
        with np.errstate(invalid="ignore", divide="ignore"):
            log_ez = np.log10(self.cosmology.efunc(np.where(np.isfinite(z), z, 0.0)))
            mu = self.log10_norm + self.slope * np.log10(t_kev / self.pivot_keV) - log_ez
        sigma2 = np.full(n, self.scatter_dex ** 2)
        t_err = catalog.get("T_err")
        if t_err is not None:
            rel = np.nan_to_num(t_err.to_value("keV") / t_kev, nan=0.0)
            sigma2 = sigma2 + (self.slope * rel / np.log(10)) ** 2
        lo, hi = self.valid_T_keV
        outside_t = (t_kev < lo) | (t_kev > hi)
        outside_z = z > self.valid_z_max
        reason = np.array([
            "; ".join(text for flag, text in (
                (bad_t, f"T outside calibrated {lo:g}-{hi:g} keV"),
                (bad_z, f"z above calibrated {self.valid_z_max:g}")) if flag)
            for bad_t, bad_z in zip(outside_t, outside_z)
        ], dtype=str).reshape(n)
        return mu, np.sqrt(sigma2), np.ones(n, bool), reason
