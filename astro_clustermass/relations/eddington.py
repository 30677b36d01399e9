"""Halo mass-function prior for the Eddington/Malmquist bias correction.

Inverting a scaling relation with a flat prior in ln M gives an estimate whose
*frequentist* coverage is exact for every true mass. Clusters are drawn from a steep
mass function, so at fixed observable there are more low-mass clusters scattered up
than high-mass ones scattered down: the population-averaged (Bayesian) estimate
multiplies the likelihood by dn/dlnM. This module builds that prior with colossus
(Tinker et al. 2008 for M500c by default) in the relation's fiducial cosmology.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u

from ..utils.optional import require

__all__ = ["MassFunctionPrior"]


class MassFunctionPrior:
    """ln(dn/dlnM)(M500c, z) tabulated with colossus, callable as a prior.

    Parameters
    ----------
    cosmology : `~astropy.cosmology.FLRW`
        Flat LCDM cosmology (H0, Om0, Ob0 used).
    sigma8, ns : float
        Power-spectrum normalisation and slope.
    model : str
        colossus mass-function model (default ``"tinker08"``).
    mdef : str
        Mass definition (default ``"500c"``).
    z_max : float
        Largest redshift tabulated.
    m_min : float
        Mass [Msun] below which the prior is zero. A cluster catalogue holds groups and
        clusters: without a floor, the steep low-mass end of the mass function and the
        non-vanishing Gaussian likelihood of a faint observable give a spurious mode
        of galaxy-mass haloes at low S/N. Default 1e13 Msun.
    """

    def __init__(self, cosmology, sigma8=0.8, ns=0.95, model="tinker08", mdef="500c",
                 z_max=2.0, m_min=1e13):
        require("colossus", feature="the mass-function prior of the relations (eddington=)")
        from colossus.cosmology import cosmology as ccosmo
        from colossus.lss import mass_function

        h = cosmology.H0.to_value(u.km / u.s / u.Mpc) / 100.0
        params = {"flat": True, "H0": 100.0 * h, "Om0": float(cosmology.Om0),
                  "Ob0": float(cosmology.Ob0 if cosmology.Ob0 is not None else 0.049),
                  "sigma8": float(sigma8), "ns": float(ns)}
        try:
            previous = ccosmo.getCurrent()
        except Exception:  # colossus raises if none is set
            previous = None
        try:
            ccosmo.setCosmology("astro_clustermass_prior", params=params, persistence="")
            self.z_grid = np.linspace(0.0, z_max, 41)
            self.lnm_grid = np.linspace(np.log(1e11), np.log(1e17), 241)
            m_h = np.exp(self.lnm_grid) * h  # colossus works in Msun/h
            table = np.empty((self.z_grid.size, self.lnm_grid.size))
            for i, z in enumerate(self.z_grid):
                mf = mass_function.massFunction(m_h, max(z, 1e-4), mdef=mdef, model=model,
                                                q_out="dndlnM")
                table[i] = np.log(np.maximum(mf, 1e-300))
        finally:
            if previous is not None:
                ccosmo.setCurrent(previous)
        self.table = table
        self.m_min = float(m_min)
        self.description = (f"{model} {mdef} mass function, sigma8={sigma8}, ns={ns}, "
                            f"zero below {self.m_min:.3g} Msun")

    def __call__(self, ln_mass, z):
        """ln prior density per ln M at ``ln_mass`` [ln Msun] and ``z`` (broadcast)."""
        from scipy.interpolate import RegularGridInterpolator

        interp = getattr(self, "_interp", None)
        if interp is None:
            interp = RegularGridInterpolator((self.z_grid, self.lnm_grid), self.table,
                                             bounds_error=False, fill_value=None)
            self._interp = interp
        lnm, zz = np.broadcast_arrays(ln_mass, z)
        zz = np.clip(zz, self.z_grid[0], self.z_grid[-1])
        pts = np.stack([zz.ravel(), lnm.ravel()], axis=-1)
        out = interp(pts).reshape(lnm.shape)
        return np.where(lnm >= np.log(self.m_min), out, -np.inf)
