"""Putting the sky together: sources -> photons -> detections, for a field or for stamps.

Two modes share all the physics:

- **field**: a contiguous (RA, Dec) box of the requested area (eFEDS-like: 9 deg high
  when large enough), every halo above 1e13 Msun, AGN, background; detection in ~1 deg
  tiles (each in its own tangent plane, with a margin).
- **stamps**: halos drawn from the mass function over a large *virtual* area; those with
  at least ``stamp_min_counts`` expected photons become stamp centres. Each stamp
  (``stamp_size`` square, its own tangent plane at a distinct virtual sky position)
  gets neighbouring halos (Poisson, all masses, unclustered), AGN and background at the
  true densities, and detection is run on its photons; detections within
  ``stamp_keep_radius`` of the centre are kept.
"""

from __future__ import annotations

import numpy as np

from . import agn as _agn
from . import emission, halos, instrument, spectra
from .detect import detect_patch

__all__ = ["offsets_to_radec", "radec_to_offsets", "make_clusters", "make_agn",
           "cluster_photons", "agn_photons", "background_photons", "background_rate",
           "band_vignetting", "field_box"]

ARCSEC = np.pi / (180 * 3600)


# -- tangent plane -------------------------------------------------------------------
def offsets_to_radec(ra0, dec0, dx, dy):
    """Inverse gnomonic projection: offsets [arcsec] (dx to +RA, dy to +Dec) -> deg."""
    a0 = np.radians(ra0)
    d0 = np.radians(dec0)
    xi = np.asarray(dx) * ARCSEC
    eta = np.asarray(dy) * ARCSEC
    cd, sd = np.cos(d0), np.sin(d0)
    den = cd - eta * sd
    ra = a0 + np.arctan2(xi, den)
    dec = np.arctan2(sd + eta * cd, np.hypot(xi, den))
    return np.degrees(ra) % 360.0, np.degrees(dec)


def radec_to_offsets(ra0, dec0, ra, dec):
    """Gnomonic projection about (ra0, dec0): deg -> offsets [arcsec]."""
    a0 = np.radians(ra0)
    d0 = np.radians(dec0)
    a = np.radians(ra)
    d = np.radians(dec)
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cosc
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc
    return xi / ARCSEC, eta / ARCSEC


# -- sources --------------------------------------------------------------------------
def make_clusters(rng, log10m, z, config):
    """Cluster truth (dict of arrays) for halos (log10 M500c, z): relations, shapes, fluxes."""
    m = 10 ** np.asarray(log10m, float)
    z = np.asarray(z, float)
    props = emission.draw_properties(rng, m, z, config)
    cosmo = config.cosmology
    r500 = halos.r500c_kpc(m, z, config)
    da = cosmo.angular_diameter_distance(z).to_value("kpc")
    dl = cosmo.luminosity_distance(z).to_value("cm")
    r500_arcsec = r500 / da / ARCSEC
    flux = props["LX"] / (4 * np.pi * dl ** 2)                 # rest 0.5-2 keV, within R500
    tab = spectra._cluster_tables(config)
    frac = emission.flux_fraction_r500(props, config)
    out = {"M500c": m, "z": z, "R500c_kpc": r500, "R500c_arcmin": r500_arcsec / 60.0,
           "FLUX": flux, "FLUX_TOT": flux / frac,
           "CR_true": flux * tab.counts_per_flux(props["T"], z, "onaxis"),
           "rate_survey": flux * tab.counts_per_flux(props["T"], z, "survey"),
           "rate_draw": flux / frac * tab.counts_per_flux(props["T"], z, "draw")}
    out.update(props)
    return out


def make_agn(rng, n, config):
    """AGN truth (dict of arrays): 0.5-2 keV flux, Gamma, log N_H, count rates."""
    flux = _agn.sample_fluxes(rng, config, n)
    gamma, lognh = _agn.sample_spectral(rng, config, n)
    tab = spectra._agn_tables(config)
    return {"FLUX": flux, "GAMMA": gamma, "LOGNH": lognh,
            "CR_true": flux * tab.counts_per_flux(gamma, lognh, "onaxis"),
            "rate_survey": flux * tab.counts_per_flux(gamma, lognh, "survey"),
            "rate_draw": flux * tab.counts_per_flux(gamma, lognh, "draw")}


def cluster_agn_counts(rng, m500c, config):
    """Number of AGN hosted within R500c of each halo."""
    lam = config.agn_cluster_rate * (np.asarray(m500c) / 1e14) ** config.agn_cluster_slope
    return rng.poisson(lam)


# -- photons ------------------------------------------------------------------------------
def cluster_photons(rng, cl, texp, config):
    """Photons of clusters: offsets [arcsec] from each halo centre, energies, cluster index.

    ``texp``: unvignetted exposure [s] at each cluster.
    """
    tab = spectra._cluster_tables(config)
    n = rng.poisson(cl["rate_draw"] * texp)
    e, src = tab.draw_energies(rng, cl["T"], cl["z"], n, config)
    kept = np.bincount(src, minlength=len(n))
    dx, dy, src2 = emission.sample_cluster_offsets(rng, kept, cl, cl["R500c_arcmin"] * 60, config)
    px, py = instrument.sample_psf_offsets(rng, src2.size, config)
    return dx + px, dy + py, e, src2


def agn_photons(rng, ag, texp, config):
    """Photons of AGN: PSF offsets [arcsec] from each AGN, energies, AGN index."""
    tab = spectra._agn_tables(config)
    n = rng.poisson(ag["rate_draw"] * texp)
    e, src = tab.draw_energies(rng, ag["GAMMA"], ag["LOGNH"], n, config)
    px, py = instrument.sample_psf_offsets(rng, src.size, config)
    return px, py, e, src


def background_rate(config):
    """Smooth background [ct/s/arcmin^2 per unvignetted s] in the event band.

    The real eFEDS background spectrum's level, minus (optionally) the mean contribution
    of the simulated AGN fainter than ``agn_resolved_limit`` (already in the real
    background).
    """
    bs = spectra.background_spectrum()
    rate = bs["rate_per_arcmin2"](config.emin, config.emax)
    if config.bkg_subtract_unresolved_agn and config.agn_resolved_limit > config.agn_smin:
        tab = spectra._agn_tables(config)
        cpf = float(tab.counts_per_flux(config.agn_gamma_mean, np.mean(config.agn_log_nh_range),
                                        "survey"))
        rate -= _agn.mean_flux_density(config, config.agn_resolved_limit) * cpf / 3600.0
    return rate


def background_energies(rng, n, config):
    bs = spectra.background_spectrum()
    sel = (bs["e_lo"] >= config.emin - 1e-9) & (bs["e_hi"] <= config.emax + 1e-9)
    p = bs["smooth"][sel]
    p = p / p.sum()
    ch = rng.choice(p.size, size=n, p=p)
    return bs["e_lo"][sel][ch] + rng.random(n) * 0.01


def background_photons(rng, area_arcmin2, tmax, config):
    """Uniform background candidates (to be thinned by exposure / tmax by the caller)."""
    n = rng.poisson(background_rate(config) * tmax * area_arcmin2)
    return n, background_energies(rng, n, config)


def band_vignetting(config):
    """Survey-averaged vignetting of the event band for a typical cluster spectrum
    (kT = 3 keV, z = 0.3): ML_EXP = unvignetted exposure x this."""
    tab = spectra._cluster_tables(config)
    return float(tab.counts_per_flux(3.0, 0.3, "survey") / tab.counts_per_flux(3.0, 0.3, "onaxis"))


def field_box(area_deg2, center=(136.0, 1.5), max_height=9.0):
    """(RA, Dec) box of ``area_deg2`` around ``center`` (eFEDS: RA ~126-146, Dec ~ -3..6)."""
    ra0, dec0 = center
    height = min(max_height, np.sqrt(area_deg2))
    d0, d1 = dec0 - height / 2, dec0 + height / 2
    # area = dRA [rad] * (sin d1 - sin d0) [sr]
    dra = area_deg2 * (np.pi / 180) ** 2 / (np.sin(np.radians(d1)) - np.sin(np.radians(d0)))
    dra = np.degrees(dra)
    return (ra0 - dra / 2, ra0 + dra / 2), (d0, d1)


def uniform_in_box(rng, n, ra_range, dec_range):
    ra = rng.uniform(ra_range[0], ra_range[1], n)
    s0, s1 = np.sin(np.radians(dec_range[0])), np.sin(np.radians(dec_range[1]))
    dec = np.degrees(np.arcsin(rng.uniform(s0, s1, n)))
    return ra, dec


def detect_in_patch(ra0, dec0, half_size, ev_ra, ev_dec, exposure_radec, config, vign,
                    core=None):
    """Run `detect_patch` on the photons around (ra0, dec0); returns detections with RA/DEC."""
    x, y = radec_to_offsets(ra0, dec0, ev_ra, ev_dec)

    def expo_xy(xx, yy):
        r, d = offsets_to_radec(ra0, dec0, xx, yy)
        return exposure_radec(r, d)

    core_xy = None
    if core is not None:
        def core_xy(xx, yy):
            r, d = offsets_to_radec(ra0, dec0, xx, yy)
            return core(r, d)
    det = detect_patch(x, y, half_size, expo_xy, config, vign, core=core_xy)
    det["RA"], det["DEC"] = offsets_to_radec(ra0, dec0, det.pop("x"), det.pop("y"))
    return det
