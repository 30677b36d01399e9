"""Cluster X-ray properties: L_X and T with correlated scatter, random surface-brightness shapes.

Relations (all masses h-free Msun; E(z) of the seed-000 cosmology):

- L_X (rest 0.5-2 keV, within R500c, projected): Pratt et al. (2009, A&A 498, 361),
  REXCESS, L[0.1-2.4]-M_Y within R500, BCES(Y|X), Malmquist-bias corrected,
  h(z)^(-7/3) L = 0.83e44 h70^-2 erg/s (M / 2e14 h70^-1 Msun)^1.62, converted to the
  0.5-2 keV band with the ratio 1.77/2.86 of their L[0.5-2]-T and L[0.1-2.4]-T
  normalisations, and from h70 units to the simulation's h = 0.6774. Deliberately *not*
  the Chiu et al. (2022) eFEDS relation that the package's L_X estimator uses (at
  2e14 Msun, z = 0.35 the simulated median is 3.3e43 erg/s, 0.48 times ``lx-chiu22``'s
  reading of it, 0.99 times the reading with the normalisation in h-free erg/s; the two
  also differ in slope and evolution).
  Pratt's masses are X-ray (hydrostatic-calibrated) masses; the simulation's are true
  masses, so both relations are evaluated at M_X = (1 - b) M500c with 1 - b = 0.58
  (``hse_bias``): the value that reconciles cluster counts calibrated on such masses with
  the Planck CMB cosmology simulated here (Planck Collaboration 2016, A&A 594, A24,
  0.58 +- 0.04). Their reference value 0.8 gives 3.4-3.8 times too many X-ray-bright
  halos (docs/validation.rst, "Simulated sky realism").
  Log-normal scatter 0.20 dex (the seed's simulation, Comparat et al. 2020 Fig. 6).
- T: Arnaud et al. (2005), h(z) M500 = 10^14.58 (T / 5 keV)^1.71 h70^-1 Msun, inverted,
  log-normal scatter 0.07 dex; the L and T residuals are correlated (rho = 0.5, an
  assumption within the range of published estimates).

Surface brightness (projected, per cluster, nothing a noiseless function of mass):
double beta model truncated at ``r_trunc`` R500c. Main component: core radius
r_c / R500c log-normal (median 0.20, 0.25 dex; calibrated on the real eFEDS extents,
docs/validation.rst), beta ~ N(0.67, 0.08) clipped to [0.52, 0.95]. Cool cores (30 %, the
Planck SZ-selected fraction of Rossetti et al. 2017, which the eFEDS selection resembles,
Ghirardini et al. 2022; independent of the L_X residual unless ``cc_lx_link`` > 0, when
the probability rises with it as cool cores are over-luminous, Chen et al. 2007): a
second component with r_c / R500c log-normal (median 0.03, 0.2 dex) carrying
U(0.15, 0.5) of the flux.
For trials, ``rc_mass_slope`` scales the median core radius as (M500c / ``rc_mpivot``)^slope
and ``cc_logit_mass_slope`` moves logit P(cool core) per dex of M500c / ``rc_mpivot``; both
are 0 by default (the draws are then those of the self-similar model).
Ellipticity: axis ratio b/a ~ N(0.8, 0.1) clipped to [0.5, 1], random position angle.
Centre offset of the X-ray emission from the halo centre: Xoff / R500c log-normal
(median 0.04, 0.3 dex; halved for cool cores), random direction.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

__all__ = ["lx_mean", "t_mean", "draw_properties", "beta_cdf", "sample_cluster_offsets"]

_H70 = 0.7


def _h70(config):
    return config.H0 / 70.0


def lx_mean(m500c, z, config):
    """Median rest-frame 0.5-2 keV L_X within R500c [erg/s] at fixed (M, z)."""
    h70 = _h70(config)
    ez = config.cosmology.efunc(z)
    mpiv = config.lx_mpivot / h70                 # h70^-1 Msun -> Msun
    norm = config.lx_norm / h70 ** 2              # h70^-2 erg/s -> erg/s
    m = np.asarray(m500c) * config.hse_bias
    return norm * (m / mpiv) ** config.lx_slope * ez ** config.lx_ez_power


def t_mean(m500c, z, config):
    """Median temperature [keV] at fixed (M, z) (Arnaud et al. 2005, inverted)."""
    h70 = _h70(config)
    ez = config.cosmology.efunc(z)
    a = 10 ** config.t_log10_norm / h70
    return 5.0 * (np.asarray(m500c) * config.hse_bias * ez / a) ** (1.0 / config.t_slope)


def draw_properties(rng, m500c, z, config):
    """L_X, T and profile parameters for halos of mass ``m500c`` at ``z``.

    Returns
    -------
    dict of arrays: LX [erg/s], T [keV], dlogLX, dlogT (residuals, dex), rc (/R500c),
    beta, cool_core (bool), rc_cc (/R500c), f_cc, b_to_a, pa (rad), Xoff (/R500c),
    xoff_pa (rad)
    """
    n = np.size(m500c)
    g1 = rng.standard_normal(n)
    g2 = rng.standard_normal(n)
    rho = config.lt_correlation
    dl = config.lx_scatter_dex * g1
    dt = config.t_scatter_dex * (rho * g1 + np.sqrt(1 - rho ** 2) * g2)
    out = {"LX": lx_mean(m500c, z, config) * 10 ** dl, "T": t_mean(m500c, z, config) * 10 ** dt,
           "dlogLX": dl, "dlogT": dt}
    mass_term = (np.asarray(m500c, float) / config.rc_mpivot) ** config.rc_mass_slope
    rc_med = config.rc_median * mass_term
    out["rc"] = np.clip(rc_med * 10 ** (config.rc_scatter_dex * rng.standard_normal(n)), 0.02, 0.8)
    out["beta"] = np.clip(rng.normal(config.beta_mean, config.beta_sd, n), 0.52, 0.95)
    # cool core: latent Gaussian = link * g1 + noise, threshold giving cc_fraction overall
    link = config.cc_lx_link
    latent = (link * g1 + rng.standard_normal(n)) / np.sqrt(1 + link ** 2)
    if 0 < config.cc_fraction < 1:
        p_cc = config.cc_fraction
        if config.cc_logit_mass_slope:
            logit = np.log(p_cc / (1 - p_cc)) + config.cc_logit_mass_slope * np.log10(
                np.asarray(m500c, float) / config.rc_mpivot)
            p_cc = 1 / (1 + np.exp(-logit))
        out["cool_core"] = latent > ndtri(1 - p_cc)
    else:
        out["cool_core"] = np.full(n, config.cc_fraction >= 1)
    out["rc_cc"] = np.clip(config.cc_rc_median * 10 ** (0.2 * rng.standard_normal(n)), 0.005, 0.1)
    lo, hi = config.cc_flux_frac
    out["f_cc"] = np.where(out["cool_core"], rng.uniform(lo, hi, n), 0.0)
    out["b_to_a"] = np.clip(rng.normal(config.axis_ratio_mean, config.axis_ratio_sd, n), 0.5, 1.0)
    out["pa"] = rng.random(n) * np.pi
    xo = config.xoff_median * 10 ** (config.xoff_scatter_dex * rng.standard_normal(n))
    out["Xoff"] = np.where(out["cool_core"], 0.5 * xo, xo)
    out["xoff_pa"] = rng.random(n) * 2 * np.pi
    return out


def beta_cdf(x, xc, beta, xt):
    """Fraction of a projected beta model's flux within radius x (truncated at xt).

    S(r) ~ (1 + r^2/xc^2)^(1/2 - 3 beta); beta > 0.5.
    """
    p = 1.5 - 3.0 * np.asarray(beta)

    def cum(r):
        return 1.0 - (1.0 + (np.asarray(r) / xc) ** 2) ** p

    return np.clip(cum(np.minimum(x, xt)) / cum(xt), 0.0, 1.0)


def _beta_radii(rng, n, xc, beta, xt):
    p = 1.5 - 3.0 * beta
    ftot = 1.0 - (1.0 + (xt / xc) ** 2) ** p
    u = rng.random(n) * ftot
    return xc * np.sqrt((1.0 - u) ** (1.0 / p) - 1.0)


def flux_fraction_r500(props, config):
    """Fraction of the (truncated) model flux within R500c (projected), per cluster."""
    xt = config.r_trunc
    f_main = beta_cdf(1.0, props["rc"], props["beta"], xt)
    f_cc = beta_cdf(1.0, props["rc_cc"], props["beta"], xt)
    return (1 - props["f_cc"]) * f_main + props["f_cc"] * f_cc


def sample_cluster_offsets(rng, counts, props, r500_arcsec, config):
    """Photon offsets [arcsec] from the halo centre for ``counts[k]`` photons of cluster k.

    Includes the centre offset, ellipticity and cool core; not the PSF.

    Returns
    -------
    dx, dy : arrays (photons; dx towards +RA), src : cluster index of each photon
    """
    counts = np.asarray(counts, int)
    src = np.repeat(np.arange(counts.size), counts)
    n = src.size
    if n == 0:
        return np.zeros(0), np.zeros(0), src
    beta = props["beta"][src]
    in_cc = rng.random(n) < props["f_cc"][src]
    xc = np.where(in_cc, props["rc_cc"][src], props["rc"][src])
    r = _beta_radii(rng, n, xc, beta, config.r_trunc)     # units of R500c
    phi = rng.random(n) * 2 * np.pi
    q = props["b_to_a"][src]
    # area-preserving elliptical stretch, major axis along pa
    a_ = r * np.cos(phi) / np.sqrt(q)
    b_ = r * np.sin(phi) * np.sqrt(q)
    pa = props["pa"][src]
    x = a_ * np.cos(pa) - b_ * np.sin(pa)
    y = a_ * np.sin(pa) + b_ * np.cos(pa)
    xo = props["Xoff"][src]
    x = x + xo * np.cos(props["xoff_pa"][src])
    y = y + xo * np.sin(props["xoff_pa"][src])
    scale = np.asarray(r500_arcsec)[src]
    return x * scale, y * scale, src
