"""AGN: point sources from the Moretti et al. (2003) 0.5-2 keV logN-logS.

N(>S) = 6150 (2e-15)^1.82 / (S^1.82 + S0^1.22 S^0.60) deg^-2, S0 = 1.48e-14 erg/s/cm^2,
drawn between ``agn_smin`` and ``agn_smax`` by inverse-transform sampling of a tabulated
N(>S); photon index Gamma ~ N(1.9, 0.2), intrinsic N_H log-uniform in 1e20-10^22.5
cm^-2 (spectra in `astro_clustermass.simulate.spectra`). Positions uniform; in addition
each halo hosts Poisson(agn_cluster_rate (M500c / 1e14 Msun)^agn_cluster_slope) AGN
within R500c (uniform in projected radius), drawn from the same flux distribution.

The real background spectrum already contains the AGN fainter than the eFEDS
point-source limit (they were not removed from the background region), so the
simulator subtracts the mean count contribution of the simulated AGN below
``agn_resolved_limit`` (5e-15 erg/s/cm^2) from the smooth background level.
"""

from __future__ import annotations

import numpy as np

__all__ = ["n_greater", "sample_fluxes", "mean_flux_density"]

_S0 = 1.48e-14


def n_greater(s):
    """Moretti et al. (2003) N(>S) per deg^2 in 0.5-2 keV; ``s`` in erg/s/cm^2."""
    s = np.asarray(s, float)
    return 6150.0 * (2e-15) ** 1.82 / (s ** 1.82 + _S0 ** 1.22 * s ** 0.60)


def _grid(config):
    s = np.logspace(np.log10(config.agn_smin), np.log10(config.agn_smax), 2000)
    return s, n_greater(s)


def expected_number(config, area_deg2):
    s, n = _grid(config)
    return float((n[0] - n[-1]) * area_deg2)


def sample_fluxes(rng, config, n):
    """``n`` fluxes [erg/s/cm^2] from the logN-logS between agn_smin and agn_smax."""
    s, cum = _grid(config)
    u = rng.random(n)
    target = cum[0] - u * (cum[0] - cum[-1])
    # cum decreases with s: interpolate log s against -cum
    return 10 ** np.interp(-target, -cum, np.log10(s))


def sample_spectral(rng, config, n):
    """Photon index and log10 intrinsic N_H for ``n`` AGN."""
    gamma = np.clip(rng.normal(config.agn_gamma_mean, config.agn_gamma_sd, n), 1.2, 2.6)
    lo, hi = config.agn_log_nh_range
    return gamma, rng.uniform(lo, hi, n)


def mean_flux_density(config, smax):
    """Mean flux per deg^2 of AGN between agn_smin and ``smax`` [erg/s/cm^2/deg^2]."""
    s = np.logspace(np.log10(config.agn_smin), np.log10(smax), 4000)
    dn = -np.gradient(n_greater(s), s)
    return float(np.trapezoid(dn * s, s))
