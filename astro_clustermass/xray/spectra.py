"""Thermal X-ray spectrum of the intracluster medium, absorbed and folded through an ARF.

No APEC/atomic database is available to this package, so the model is the thermal
bremsstrahlung continuum with the thermally averaged non-relativistic Born Gaunt factor,

.. math::

    \\frac{dN}{dE} \\propto \\bar g(E, T)\\, T^{-1/2} \\frac{e^{-E/kT}}{E},\\qquad
    \\bar g = \\frac{\\sqrt{3}}{\\pi} e^{u/2} K_0(u/2),\\ u = E/kT,

plus an optional *line approximation*: the Fe-L complex as one Gaussian line at
``line_energy`` (default 1.0 keV, sigma 0.1 keV) carrying a fraction ``line_fraction``
of the 0.5-2 keV rest-frame energy flux of the continuum. Line emission is not
predicted from atomic physics: the default ``line_fraction=0`` is pure continuum, and
docs/photometry.rst quantifies how much the conversion factors move when lines carry
30% of the soft-band flux (the regime of 1-2 keV groups at 0.3 solar metallicity).
Galactic absorption uses the Morrison & McCammon (1983) cross sections.

The simulator (``astro_clustermass.simulate``) can reuse `thermal_photon_spectrum`,
`absorption`, `read_arf` and `fold` to draw photon energies.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.special import k0e

from .response import ARF_PATH
from .response import read_arf as _read_arf

__all__ = ["gaunt_born", "thermal_photon_spectrum", "absorption", "mm83_cross_section",
           "read_arf", "fold", "ARF_PATH"]


# Morrison & McCammon (1983, ApJ 270, 119), Table 2: sigma(E) E^3 = (c0 + c1 E + c2 E^2)
# x 1e-24 cm^2 keV^3 per hydrogen atom (solar abundances), E in keV.
_MM83_EDGES = np.array([0.030, 0.100, 0.284, 0.400, 0.532, 0.707, 0.867, 1.303, 1.840,
                        2.471, 3.210, 4.038, 7.111, 8.331, 10.00])
_MM83_COEFFS = np.array([
    [17.3, 608.1, -2150.0], [34.6, 267.9, -476.1], [78.1, 18.8, 4.3],
    [71.4, 66.8, -51.4], [95.5, 145.8, -61.1], [308.9, -380.6, 294.0],
    [120.6, 169.3, -47.7], [141.3, 146.8, -31.5], [202.7, 104.7, -17.0],
    [342.7, 18.7, 0.0], [352.2, 18.7, 0.0], [433.9, -2.4, 0.75],
    [629.0, 30.9, 0.0], [701.2, 25.2, 0.0],
])


def mm83_cross_section(energy):
    """Photoelectric cross section per H atom [cm^2] at ``energy`` [keV] (0.03-10 keV;
    above 10 keV the 8.3-10 keV fit is extrapolated)."""
    e = np.asarray(energy, dtype=float)
    idx = np.clip(np.searchsorted(_MM83_EDGES, e, side="right") - 1, 0, len(_MM83_COEFFS) - 1)
    c = _MM83_COEFFS[idx]
    return (c[..., 0] + c[..., 1] * e + c[..., 2] * e ** 2) * e ** -3.0 * 1e-24


def absorption(energy, nh):
    """Transmission exp(-N_H sigma(E)) for a column ``nh`` [cm^-2] at ``energy`` [keV]."""
    return np.exp(-float(nh) * mm83_cross_section(energy))


def gaunt_born(energy, kT):
    """Thermally averaged non-relativistic Born free-free Gaunt factor."""
    u = np.asarray(energy, float) / np.asarray(kT, float)
    return np.sqrt(3.0) / np.pi * k0e(0.5 * u)


def thermal_photon_spectrum(energy, kT, line_fraction=0.0, line_energy=1.0, line_sigma=0.1):
    """Rest-frame photon spectrum dN/dE (arbitrary normalisation) at ``energy`` [keV].

    Parameters
    ----------
    energy : array
        Rest-frame photon energies [keV].
    kT : float
        Temperature [keV].
    line_fraction : float
        Energy flux of the Gaussian line approximation as a fraction of the continuum
        energy flux in 0.5-2 keV (0 = continuum only).
    line_energy, line_sigma : float
        Centre and width of the line [keV].
    """
    e = np.asarray(energy, dtype=float)
    kT = float(kT)
    if kT <= 0:
        raise ValueError(f"temperature must be > 0 keV, got {kT}")
    cont = gaunt_born(e, kT) * kT ** -0.5 * np.exp(-e / kT) / e
    if line_fraction:
        fine = np.linspace(0.5, 2.0, 3001)
        fcont = gaunt_born(fine, kT) * kT ** -0.5 * np.exp(-fine / kT)  # E dN/dE
        band_flux = np.trapezoid(fcont, fine)
        # Line photons: energy flux line_fraction * band_flux at ~line_energy.
        amp = line_fraction * band_flux / line_energy
        cont = cont + amp * np.exp(-0.5 * ((e - line_energy) / line_sigma) ** 2) / \
            (np.sqrt(2 * np.pi) * line_sigma)
    return cont


@functools.lru_cache(maxsize=4)
def read_arf(path=ARF_PATH, correction="onaxis"):
    """Energy grid and effective area of an ARF.

    Parameters
    ----------
    path : str
        OGIP ARF (SPECRESP extension), read with
        `astro_clustermass.xray.response.read_arf`.
    correction : {"onaxis", "as-is"}
        ``"onaxis"`` divides SPECRESP by CORRCOMB (when present), giving the
        unvignetted full-PSF area that corresponds to count rates measured with
        vignetted exposure maps and PSF-fitting or large apertures (eSASS ML_RATE,
        `astro_clustermass.photometry`). ``"as-is"`` keeps SPECRESP (rates in the
        source's own extraction region, vignetted).

    Returns
    -------
    e_lo, e_hi, area : arrays
        Bin edges [keV] and effective area [cm^2] (read-only).
    """
    if correction not in ("onaxis", "as-is"):
        raise ValueError(f"ARF correction must be 'onaxis' or 'as-is', not {correction!r}")
    arf = _read_arf(path)
    area = arf.onaxis if correction == "onaxis" else arf.specresp
    area.setflags(write=False)
    return arf.e_lo, arf.e_hi, area


def fold(photon_flux_density, e_lo, e_hi, area, band=(0.2, 2.3), n_sub=4):
    """Count rate: integral of dN/dE x A(E) over ``band`` (observed-frame keV).

    Parameters
    ----------
    photon_flux_density : callable
        ``f(E_obs) -> dN/dE`` in photons / cm^2 / s / keV.
    e_lo, e_hi, area : arrays
        ARF bins and effective area [cm^2].
    band : tuple
        Energy band [keV] (the ARF's true-energy axis; no RMF redistribution).
    n_sub : int
        Sub-samples per ARF bin (midpoint rule).
    """
    lo, hi = band
    sel = (e_hi > lo) & (e_lo < hi)
    a_lo = np.clip(e_lo[sel], lo, hi)
    a_hi = np.clip(e_hi[sel], lo, hi)
    t = (np.arange(n_sub) + 0.5) / n_sub
    e = a_lo[:, None] + (a_hi - a_lo)[:, None] * t[None, :]
    width = (a_hi - a_lo)[:, None] / n_sub
    return float(np.sum(photon_flux_density(e) * width * area[sel][:, None]))
