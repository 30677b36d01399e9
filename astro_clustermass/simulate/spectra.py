"""Photon spectra of clusters, AGN and background, folded through the survey response.

Cluster emission (no APEC database here): the thermal bremsstrahlung continuum with the
thermally averaged Born Gaunt factor of `astro_clustermass.xray.spectra`, plus the Fe-L
complex as one Gaussian line at 1 keV (sigma 0.1 keV) carrying a fraction
``line_fraction(kT) = min(0.5, f1 (kT / 1 keV)^s)`` (defaults f1 = 0.30, s = -1.5) of the
rest-frame 0.5-2 keV energy flux. This is an approximation of APEC at ~0.3 solar
metallicity: the total 0.5-2 keV flux is the relation's L_X by construction, so the
approximation only moves photons in energy; docs/simulate.rst estimates its effect on
the count rate (a few per cent, larger for 1 keV groups).

AGN: power law of photon index Gamma with intrinsic absorption (at z = 0) and Galactic
absorption, normalised to the *observed* 0.5-2 keV flux of the Moretti et al. (2003)
logN-logS.

Galactic absorption: Morrison & McCammon (1983), N_H = 3e20 cm^-2.

Tables: for every (kT, z) node (clusters) or (Gamma, N_H) node (AGN) the expected
0.2-2.3 keV (PI) counts per unit flux per second of unvignetted exposure through the
survey (vignetted) area, and the cumulative distribution of true photon energies in
0.1-3.0 keV, from which photons are drawn and then smeared with the energy resolution.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from ..xray import spectra as _pkgspectra
from . import instrument

__all__ = ["ClusterSpectra", "AGNSpectra", "background_spectrum", "line_fraction",
           "KEV_ERG", "E_GRID"]

KEV_ERG = 1.602176634e-9
#: true-energy grid for photon draws [keV] (bin edges)
E_GRID = np.round(np.arange(0.1, 3.0 + 1e-9, 0.005), 6)


def line_fraction(kT, config):
    """Fe-L line share of the rest 0.5-2 keV energy flux (see module docstring)."""
    return np.minimum(0.5, config.line_fraction_1keV * np.asarray(kT, float)
                      ** config.line_fraction_slope)


def _survey_area_on(e, which="survey"):
    a = instrument.arf()
    return np.interp(e, a["e_mid"], a[which], left=0.0, right=0.0)


def _pi_band_fraction(e_true, config):
    """Probability that a photon of true energy e ends with PI in [emin, emax]."""
    from scipy.special import ndtr

    sig = np.sqrt(config.fwhm_0 ** 2 + config.fwhm_e * e_true) / 2.3548
    return ndtr((config.emax - e_true) / sig) - ndtr((config.emin - e_true) / sig)


class _Table:
    """Counts per flux and energy CDFs on a 2-D parameter grid."""

    def _build(self, spectra_fn, flux_band_fn, config):
        e_edges = E_GRID
        e = 0.5 * (e_edges[1:] + e_edges[:-1])
        de = np.diff(e_edges)
        area = _survey_area_on(e) * _pi_band_fraction(e, config)
        area_on = _survey_area_on(e, "onaxis") * _pi_band_fraction(e, config)
        gal = _pkgspectra.absorption(e, config.nh_gal)
        na, nb = len(self.a), len(self.b)
        self.cts_per_flux = np.zeros((na, nb))      # counts / s per erg/s/cm^2
        self.cts_per_flux_onaxis = np.zeros((na, nb))
        self.cts_draw_per_flux = np.zeros((na, nb))  # all true energies 0.1-3 keV (survey)
        area_all = _survey_area_on(e)
        self.cdf = np.zeros((na, nb, len(e)))
        for i, av in enumerate(self.a):
            for j, bv in enumerate(self.b):
                dnde = spectra_fn(e, av, bv)            # photons/cm^2/s/keV (arbitrary)
                eflux = flux_band_fn(av, bv)            # erg/cm^2/s in the flux band
                self.cts_per_flux[i, j] = (dnde * gal * area * de).sum() / eflux
                self.cts_per_flux_onaxis[i, j] = (dnde * gal * area_on * de).sum() / eflux
                ph = dnde * gal * area_all * de         # counts/s per bin, before PI cut
                self.cts_draw_per_flux[i, j] = ph.sum() / eflux
                c = np.cumsum(ph)
                self.cdf[i, j] = c / c[-1]
        self.e_edges = e_edges

    def _index(self, av, bv):
        ia = np.clip(np.rint(np.interp(av, self.a, np.arange(len(self.a)))), 0,
                     len(self.a) - 1).astype(int)
        ib = np.clip(np.rint(np.interp(bv, self.b, np.arange(len(self.b)))), 0,
                     len(self.b) - 1).astype(int)
        return ia, ib

    def counts_per_flux(self, av, bv, kind="survey"):
        """Counts/s per unit flux, bilinear in the grid.

        ``kind``: ``"survey"`` (0.2-2.3 keV PI, per unvignetted second through the
        survey-averaged vignetted area), ``"onaxis"`` (same band, on-axis area: the
        ML_RATE convention), ``"draw"`` (all true energies 0.1-3 keV, survey area: the
        photons that are drawn before the energy-resolution smearing and PI cut).
        """
        from scipy.interpolate import RegularGridInterpolator

        tab = {"survey": self.cts_per_flux, "onaxis": self.cts_per_flux_onaxis,
               "draw": self.cts_draw_per_flux}[kind]
        interp = RegularGridInterpolator((self.a, self.b), np.log(tab), bounds_error=False,
                                         fill_value=None)
        av = np.clip(av, self.a[0], self.a[-1])
        bv = np.clip(bv, self.b[0], self.b[-1])
        return np.exp(interp(np.column_stack([np.ravel(av), np.ravel(bv)]))).reshape(np.shape(av))

    def draw_energies(self, rng, av, bv, counts, config):
        """True energies for ``counts[k]`` photons of source k; smeared; PI-band cut.

        Returns (energies [keV], source index) of the photons that land in the band.
        """
        counts = np.asarray(counts, int)
        src = np.repeat(np.arange(len(counts)), counts)
        if src.size == 0:
            return np.zeros(0), src
        ia, ib = self._index(np.asarray(av)[src], np.asarray(bv)[src])
        u = rng.random(src.size)
        # inverse CDF per node: group by node for searchsorted
        node = ia * len(self.b) + ib
        ebin = np.empty(src.size, int)
        order = np.argsort(node, kind="stable")
        ns = node[order]
        bounds = np.flatnonzero(np.diff(ns)) + 1
        for seg in np.split(order, bounds):
            k = node[seg[0]]
            ebin[seg] = np.searchsorted(self.cdf.reshape(-1, self.cdf.shape[-1])[k], u[seg])
        ebin = np.clip(ebin, 0, len(self.e_edges) - 2)
        e = self.e_edges[ebin] + rng.random(src.size) * np.diff(self.e_edges)[ebin]
        e = instrument.smear_energies(rng, e, config)
        keep = (e >= config.emin) & (e < config.emax)
        return e[keep], src[keep]


class ClusterSpectra(_Table):
    """Absorbed thermal spectra on a (kT, z) grid; flux = rest-frame 0.5-2 keV."""

    def __init__(self, config):
        self.a = np.exp(np.linspace(np.log(0.2), np.log(20.0), 56))   # kT [keV]
        self.b = np.round(np.arange(0.0, 1.52, 0.02), 4)                # z
        cfg = config

        def spec(e_obs, kT, z):
            lf = float(line_fraction(kT, cfg))
            return _pkgspectra.thermal_photon_spectrum(e_obs * (1 + z), kT, lf)

        def flux(kT, z):
            lf = float(line_fraction(kT, cfg))
            lo, hi = 0.5 / (1 + z), 2.0 / (1 + z)
            ee = np.linspace(lo, hi, 2001)
            f = ee * _pkgspectra.thermal_photon_spectrum(ee * (1 + z), kT, lf)
            return np.trapezoid(f, ee) * KEV_ERG

        self._build(spec, flux, config)


class AGNSpectra(_Table):
    """Absorbed power laws on a (Gamma, log N_H) grid; flux = observed 0.5-2 keV
    (after intrinsic, before Galactic absorption)."""

    def __init__(self, config):
        self.a = np.round(np.arange(1.2, 2.61, 0.05), 4)
        self.b = np.round(np.arange(19.0, 23.01, 0.25), 4)

        def spec(e, gamma, lognh):
            return e ** -gamma * _pkgspectra.absorption(e, 10 ** lognh)

        def flux(gamma, lognh):
            ee = np.linspace(0.5, 2.0, 2001)
            return np.trapezoid(ee * spec(ee, gamma, lognh), ee) * KEV_ERG

        self._build(spec, flux, config)


@functools.lru_cache(maxsize=4)
def _cluster_tables(config):
    return ClusterSpectra(config)


@functools.lru_cache(maxsize=4)
def _agn_tables(config):
    return AGNSpectra(config)


@functools.lru_cache(maxsize=2)
def background_spectrum(path=os.path.join(instrument.DATA_DIR, "efeds_background_spectrum.fits"),
                        smooth_channels=5):
    """The real eFEDS background spectrum.

    Returns
    -------
    dict: ``e_lo``, ``e_hi`` channel edges [keV] (10 eV channels), ``counts`` (raw),
    ``smooth`` (running mean over ``smooth_channels``, used to draw PI values so the
    Poisson noise of the 4303-count spectrum is not imprinted), ``exposure`` [s],
    ``backscal_arcmin2``, and ``rate_per_arcmin2(lo, hi)`` (ct/s/arcmin^2 per
    unvignetted second).
    """
    from astropy.io import fits

    with fits.open(path) as hdul:
        d = hdul["SPECTRUM"].data
        h = hdul["SPECTRUM"].header
        ch = np.array(d["CHANNEL"], int)
        counts = np.array(d["COUNTS"], float)
        exposure = float(h["EXPOSURE"])
        backscal = float(h["BACKSCAL"])   # deg^2 (header comment: [deg^2])
    # eROSITA PI channels are 10 eV wide: channel c covers [c, c+1) x 10 eV
    e_lo = ch * 0.01
    e_hi = (ch + 1) * 0.01
    kern = np.ones(smooth_channels) / smooth_channels
    smooth = np.convolve(counts, kern, mode="same")
    area = backscal * 3600.0

    def rate(lo, hi, spectrum=counts):
        sel = (e_lo >= lo - 1e-9) & (e_hi <= hi + 1e-9)
        return spectrum[sel].sum() / exposure / area

    return {"e_lo": e_lo, "e_hi": e_hi, "counts": counts, "smooth": smooth,
            "exposure": exposure, "backscal_arcmin2": area, "rate_per_arcmin2": rate}
