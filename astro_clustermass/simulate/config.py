"""Parameters of the mock eFEDS-like sky, in one place (recorded in every run's manifest).

Every number here is documented in ``docs/simulate.rst`` with its source. Change them
through `SimConfig` (``SimConfig(lx_scatter_dex=0.25)``) or, on the command line, with
``--set NAME=VALUE``; the values used are written to the output's ``manifest.yaml``.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["SimConfig", "DEFAULT_CONFIG"]


@dataclass(frozen=True)
class SimConfig:
    """All parameters of the simulation (frozen; use ``dataclasses.replace``).

    Units: masses in Msun (h-free), angles in arcsec unless named ``_deg``/``_arcmin``,
    energies in keV, times in s, fluxes in erg/s/cm^2.
    """

    # -- cosmology (seed 000; Comparat et al. 2020) ---------------------------------
    H0: float = 67.74
    Om0: float = 0.3089
    Ob0: float = 0.048206
    sigma8: float = 0.8147
    ns: float = 0.9667
    # -- halos --------------------------------------------------------------------
    mass_function: str = "tinker08"
    log10_mmin: float = 13.0
    log10_mmax: float = 15.8
    zmin: float = 0.01
    zmax: float = 1.3
    # -- L_X - M - z: Pratt et al. (2009) REXCESS, L[0.1-2.4] within R500 vs M_Y,
    #    BCES(Y|X), Malmquist-bias corrected: h(z)^(-7/3) L = C (M / 2e14 h70^-1 Msun)^alpha,
    #    C = 0.83e44 h70^-2 erg/s, alpha = 1.62; band 0.1-2.4 -> 0.5-2 keV factor 1.77/2.86
    #    (ratio of their L[0.5-2]-T and L[0.1-2.4]-T normalisations).
    lx_norm: float = 0.83e44 * 1.77 / 2.86
    lx_mpivot: float = 2e14
    lx_slope: float = 1.62
    lx_ez_power: float = 7.0 / 3.0
    lx_scatter_dex: float = 0.20     # seed 000 sect. 4 (Comparat et al. 2020 Fig. 6)
    # hydrostatic mass bias: Pratt et al. and Arnaud et al. masses are X-ray (HSE-based,
    # M_Y via Arnaud et al. 2010); true masses are larger: M_X = (1 - b) M_true. 1-b = 0.58
    # (+-0.04) is the value that reconciles cluster counts calibrated on those HSE masses
    # with the Planck CMB cosmology simulated here (Planck Collaboration 2016, A&A 594,
    # A24); their reference value 0.8 gives 3.8 times the ROSAT counts of Collins et al.
    # (1997) and twice the eFEDS clusters (docs/validation.rst). Applied to both relations.
    hse_bias: float = 0.58
    # -- T - M - z: Arnaud et al. (2005), h(z) M500 = 10^14.58 (T / 5 keV)^1.71 h70^-1 Msun
    t_log10_norm: float = 14.58
    t_slope: float = 1.71
    t_scatter_dex: float = 0.07      # seed 000 sect. 4
    lt_correlation: float = 0.5      # correlation of the L and T residuals (assumed)
    # -- surface-brightness profile (double beta model; all shape parameters random) --
    # core radius / R500c, log-normal median: calibrated on the real eFEDS extents (EXT of
    # the selected sources) on fields of seeds 3101-3102; 0.15 until 2026-12-06 gave the
    # clusters at z = 0.2-0.5 half the real median EXT (docs/validation.rst)
    rc_median: float = 0.20
    rc_scatter_dex: float = 0.25
    # the median core radius scales as (M500c / rc_mpivot)^rc_mass_slope (0: self-similar,
    # the same r_c / R500c at every mass); rc_median is the median at rc_mpivot [Msun]
    rc_mass_slope: float = 0.0
    rc_mpivot: float = 1e14
    beta_mean: float = 0.67
    beta_sd: float = 0.08
    # fraction of cool-core clusters: Planck SZ-selected clusters, 29 +- 4 % (Rossetti et
    # al. 2017), which the eFEDS selection resembles (Ghirardini et al. 2022); 0.4 with
    # cc_lx_link = 1 until 2026-12-06 made half of the selected clusters cool-core
    cc_fraction: float = 0.3
    cc_lx_link: float = 0.0          # how strongly the L_X residual raises P(cool core)
    # logit P(cool core) changes by this per dex of M500c / rc_mpivot (0: the same
    # fraction at every mass; negative: more cool cores in groups)
    cc_logit_mass_slope: float = 0.0
    cc_rc_median: float = 0.03       # cool-core component core radius / R500c
    cc_flux_frac: tuple = (0.15, 0.5)  # uniform range of the cool-core component's flux share
    axis_ratio_mean: float = 0.8
    axis_ratio_sd: float = 0.1
    xoff_median: float = 0.04        # centre offset / R500c, log-normal median
    xoff_scatter_dex: float = 0.3
    r_trunc: float = 2.0             # emission truncated at r_trunc R500c (projected)
    # -- spectra ---------------------------------------------------------------------
    nh_gal: float = 3e20             # cm^-2, eFEDS (HI4PI: 1-5e20)
    line_fraction_1keV: float = 0.30  # Fe-L line share of the 0.5-2 keV flux at kT = 1 keV
    line_fraction_slope: float = -1.5  # ... scaling as (kT / 1 keV)^slope, capped at 0.5
    fwhm_0: float = 0.050            # keV, energy resolution FWHM^2 = fwhm_0^2 + fwhm_e E
    fwhm_e: float = 0.002617         # keV (80 eV FWHM at 1.49 keV)
    emin: float = 0.2                # keV, event-file band
    emax: float = 2.3
    # -- AGN: Moretti et al. (2003) 0.5-2 keV logN-logS ---------------------------------
    agn_smin: float = 2e-16          # erg/s/cm^2, faintest simulated AGN
    agn_smax: float = 1e-11
    agn_gamma_mean: float = 1.9
    agn_gamma_sd: float = 0.2
    agn_log_nh_range: tuple = (20.0, 22.5)  # intrinsic N_H, log-uniform
    agn_cluster_rate: float = 0.2    # AGN (S > smin) per halo of 1e14 Msun within R500c ...
    agn_cluster_slope: float = 0.5   # ... x (M500c / 1e14)^slope
    agn_resolved_limit: float = 5e-15  # AGN below this are part of the real background spectrum
    # -- background, instrument, survey ------------------------------------------------
    bkg_subtract_unresolved_agn: bool = True
    psf_hew: float = 28.0            # arcsec, survey-averaged half-energy width
    psf_king_beta: float = 1.5       # King profile slope (r_c from the HEW)
    psf_rmax: float = 1800.0         # arcsec, PSF photons scattered further are dropped
    # "efeds": the real eFEDS exposure distribution (ML_EXP of the candidates, Klein et al.
    # 2022); "gaussian": exposure_mean with the modulations below (before 2026-12-06)
    exposure_model: str = "efeds"
    exposure_mean: float = 2200.0    # s, unvignetted (nominal; the "gaussian" model's mean)
    exposure_rms: float = 0.10       # fractional, large-scale variation
    exposure_stripe: float = 0.05    # fractional amplitude of the scan-pattern stripes
    exposure_stripe_period_deg: float = 0.9
    exposure_edge_deg: float = 0.3   # exposure tapers to zero over this at the field edge
    pixel: float = 4.0               # arcsec
    tstart: float = 626421689.3      # s (eFEDS, Nov 2019), event TIME range
    tstop: float = 626770000.0
    # -- detection -----------------------------------------------------------------------
    det_scales: tuple = (2.5, 7.0, 18.0)  # Gaussian smoothing sigmas [pixels]
    det_cand_like: tuple = (4.5, 5.0, 5.0)  # candidate thresholds (-ln P) per scale
    det_fit_radius: float = 300.0    # arcsec
    # background map: pixels whose smoothed counts (Gaussian sigmas in pixels) are
    # significant are masked; the rest is averaged in blocks of det_bkg_block pixels
    # (masking only at the 10" and 28" scales, as eSASS's cheese mask around erbox's
    # sources, was tried on 2026-12-06 and changed nothing: docs/validation.rst)
    det_bkg_mask_scales: tuple = (7.0, 18.0)
    det_bkg_block: int = 64
    det_like_min: float = 4.0        # detections kept in the output
    # erbox-like point-source significance at the fitted position (-ln P of the counts in
    # a beam of the smallest scale under the background; BOX_LIKE): detections below
    # det_box_like_min are not reported (0: no requirement). Without it the simulated
    # selection had 3 times eFEDS's share of DET_LIKE < 15 (sums of faint AGN, cluster
    # fragments: no point-like peak). 6 is chosen on seed 3101 between the real
    # catalogue's DET_LIKE - EXT_LIKE of its weakest extended sources (best matched by 8)
    # and the redshifts, which a higher threshold lowers (docs/validation.rst)
    det_box_like_min: float = 6.0
    # extended candidates with a stronger point-like one within this radius [arcsec] get a
    # third neighbour pass (0: none); it removes extended "ghosts" in the wings of bright
    # point sources left by the oscillating two-pass fit (docs/validation.rst)
    det_ext_refit_radius: float = 120.0
    # a candidate's model enters its neighbours' backgrounds only if its likelihood gain
    # exceeds this (5: DET_LIKE = 4.0 for a point source, the catalogue's own minimum).
    # With 2.0 (before 2026-12-06) the noise peaks in a cluster's outskirts, a few counts
    # each, were subtracted from its fit and made its EXT 15-35 % low (docs/validation.rst)
    det_model_min_dlnl: float = 5.0
    # extended-model core radius grid: min, max, n [arcsec]. The smallest extent eSASS
    # ermldet fitted in eFEDS is 8" (the real candidates' EXT lie in 8.04-60.0"); larger
    # extents than the reported maximum stay in the fit, so that the models of big
    # clusters take in their outskirts (capping the fit at 60" made the outskirts of a
    # third of the selected clusters separate extended detections)
    ext_grid: tuple = (8.0, 300.0, 28)
    ext_report_max: float = 60.0     # EXT is reported at most this [arcsec] (27 of 542 eFEDS)
    # report DET_LIKE, EXT_LIKE, ML_CTS, ML_RATE and EXT of the best model with EXT <=
    # ext_report_max (ermldet's extmax), while the wider fit (EXT_FIT) stays the source's
    # model for its neighbours and the clean-up; False: report the wider fit (until
    # 2026-12-06), whose total counts can take in a background-map offset over the 300"
    det_report_capped_extent: bool = True
    # two point sources as the alternative to one extended source (eSASS nmulsou = 2;
    # simulate/blends.py): tested for extended candidates with EXT <= ext_report_max and
    # EXT_LIKE above det_two_point_min_ext_like, on the photons within det_two_point_radius;
    # preferred when ln L rises by more than ln N (N photons in the fit: the Bayesian
    # information criterion's price of 2 more parameters), or det_two_point_dlnl if > 0
    det_two_point: bool = True
    det_two_point_min_ext_like: float = 3.0
    det_two_point_radius: float = 90.0
    det_two_point_dlnl: float = 0.0
    # -- stamps ---------------------------------------------------------------------------
    stamp_size: float = 1400.0       # arcsec (side)
    stamp_keep_radius: float = 100.0  # detections kept within this of the stamp centre
    stamp_min_counts: float = 15.0   # central halos need >= this many expected counts
    stamp_neighbour_min_counts: float = 0.05
    chunk_size: int = 400

    def to_dict(self):
        """Plain-Python dict (for the YAML manifest)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, d):
        """Inverse of `to_dict` (unknown keys are an error)."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        kw = {}
        for k, v in (d or {}).items():
            if k not in names:
                raise ValueError(f"unknown simulation parameter {k!r}")
            default = names[k].default
            kw[k] = tuple(v) if isinstance(default, tuple) else type(default)(v)
        return cls(**kw)

    def replace(self, **kw):
        return dataclasses.replace(self, **kw)

    @property
    def psf_rc(self):
        """King core radius [arcsec] giving the configured HEW (beta = 1.5 exactly)."""
        b = self.psf_king_beta
        # EEF(r) = 1 - (1 + r^2/rc^2)^(1-b) = 0.5 at r = HEW/2
        x2 = 0.5 ** (1.0 / (1.0 - b)) - 1.0
        return 0.5 * self.psf_hew / np.sqrt(x2)

    @functools.cached_property
    def cosmology(self):
        from astropy.cosmology import FlatLambdaCDM

        return FlatLambdaCDM(H0=self.H0, Om0=self.Om0, Ob0=self.Ob0, Tcmb0=2.7255,
                             name="seed000")


DEFAULT_CONFIG = SimConfig()
