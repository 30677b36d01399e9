"""Dark-matter halos: M500c and z drawn from a halo mass function over a sky area.

The mass function is Tinker et al. (2008) for M500c (``colossus``), in the seed-000
cosmology (flat LCDM, H0 = 67.74, Om = 0.3089, Ob = 0.048206, sigma8 = 0.8147,
ns = 0.9667). Halos are Poisson-sampled from n(M, z) dV/dz on a fine (log10 M, z) grid
(0.01 x 0.01) and placed uniformly (no clustering) on the sky. R500c follows from
M500c = 500 rho_c(z) 4/3 pi R500c^3.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["halo_grid", "expected_number", "sample_halos", "r500c_kpc"]

_DLOGM = 0.01
_DZ = 0.01


@functools.lru_cache(maxsize=4)
def halo_grid(config):
    """dN/(dlog10M dz dsr) on the (log10 M, z) grid (cell centres).

    Returns
    -------
    logm, z : 1-D arrays (cell centres)
    dn : 2-D array (len(logm), len(z)) of halos per cell per steradian
    """
    from colossus.cosmology import cosmology as ccosmo
    from colossus.lss import mass_function

    params = dict(flat=True, H0=config.H0, Om0=config.Om0, Ob0=config.Ob0,
                  sigma8=config.sigma8, ns=config.ns)
    ccosmo.setCosmology("astro_clustermass_sim", params=params)
    h = config.H0 / 100.0
    logm = np.arange(config.log10_mmin + _DLOGM / 2, config.log10_mmax, _DLOGM)
    z = np.arange(config.zmin + _DZ / 2, config.zmax, _DZ)
    m_h = 10 ** logm * h                                   # Msun/h
    dvdz = config.cosmology.differential_comoving_volume(z).to_value("Mpc3 / sr")
    dn = np.empty((logm.size, z.size))
    for j, zz in enumerate(z):
        # dn/dlnM in (Mpc/h)^-3 -> per Mpc^3 per dlog10 M
        mf = mass_function.massFunction(m_h, zz, mdef="500c", model=config.mass_function,
                                        q_out="dndlnM")
        dn[:, j] = mf * h ** 3 * np.log(10.0) * _DLOGM * dvdz[j] * _DZ
    return logm, z, dn


def expected_number(config, area_deg2):
    """Expected number of halos in the configured mass and redshift ranges."""
    _, _, dn = halo_grid(config)
    return float(dn.sum() * area_deg2 * (np.pi / 180) ** 2)


def sample_halos(rng, config, area_deg2, n=None):
    """Draw halos (log10 M500c, z) for ``area_deg2``.

    Parameters
    ----------
    rng : numpy Generator
    config : SimConfig
    area_deg2 : float
    n : int, optional
        Number to draw (default: Poisson around the expected number).

    Returns
    -------
    log10m, z : arrays
    """
    logm, z, dn = halo_grid(config)
    lam = dn.sum() * area_deg2 * (np.pi / 180) ** 2
    if n is None:
        n = rng.poisson(lam)
    p = (dn / dn.sum()).ravel()
    cells = rng.choice(p.size, size=n, p=p)
    im, iz = np.unravel_index(cells, dn.shape)
    lm = logm[im] + (rng.random(n) - 0.5) * _DLOGM
    zz = z[iz] + (rng.random(n) - 0.5) * _DZ
    return lm, zz


def r500c_kpc(m500c, z, config):
    """R500c [kpc] of halos of mass ``m500c`` [Msun] at redshift ``z``."""
    from astropy import units as u

    rho_c = config.cosmology.critical_density(z).to_value(u.Msun / u.kpc ** 3)
    return (3.0 * np.asarray(m500c) / (4.0 * np.pi * 500.0 * rho_c)) ** (1.0 / 3.0)
