"""eROSITA (eFEDS) instrument model: effective area, vignetting, PSF, energy resolution, exposure.

- Effective area: the shipped eFEDS ARF. Its SPECRESP includes the survey-averaged
  vignetting and the PSF-loss correction of the extraction region; CORRCOMB is the
  exposure-weighted average of their product (it is larger than CORRVIGN x CORRPSF by
  ~11%, because off-axis scans have both lower vignetting and a broader PSF), so the
  on-axis area is SPECRESP / CORRCOMB (the convention of `astro_clustermass.xray.spectra` and
  the ECF tables). The *survey* area a source sees, averaged over the scans that cross
  it, is on-axis x CORRVIGN(E) (energy dependent, 0.53 at 1 keV); the full PSF is then
  applied by the simulator's own PSF.
- PSF: a King profile, S(r) ~ (1 + r^2/r_c^2)^-beta with beta = 1.5 and r_c chosen for
  the configured half-energy width (28" -> r_c = 8.08"), the same everywhere (survey
  average). With beta = 1.5 the profile is the 2-D Poisson kernel, so its convolution
  with a beta = 2/3 cluster model of core radius r_x is again a King profile of core
  r_c + r_x: the detection uses this exact result.
- Energy resolution: Gaussian, FWHM^2 = fwhm_0^2 + fwhm_e E (80 eV at 1.49 keV, 50 eV at
  low energy).
- Exposure (``exposure_model``): ``"efeds"`` (default): a smooth random field (~1 deg
  correlation) whose one-point distribution is that of the real eFEDS exposure at the
  cluster candidates (ML_EXP of Klein et al. 2022 over the survey-averaged band
  vignetting, each candidate weighted by 1 / ML_EXP to undo the detection's preference
  for deep regions; `efeds_exposure_distribution`): 0.8-2 ks vignetted with the real
  spread, edges and deep overlaps included. ``"gaussian"`` (the model before 2026-12-06):
  mean 2.2 ks unvignetted with a Gaussian modulation (10% rms), scan stripes (5%) and a
  taper at the field edges.
"""

from __future__ import annotations

import functools

import numpy as np

from ..xray.response import ARF_PATH, DATA_DIR, read_arf

__all__ = ["DATA_DIR", "arf", "sample_psf_offsets", "king_eef", "smear_energies",
           "ExposureMap"]

ARF_FILE = ARF_PATH


@functools.lru_cache(maxsize=2)
def arf(path=ARF_FILE):
    """Energy grid [keV], on-axis area and survey (vignetted) area [cm^2] of the ARF.

    Read with `astro_clustermass.xray.response.read_arf`.

    Returns
    -------
    dict with ``e_lo``, ``e_hi``, ``e_mid``, ``onaxis``, ``survey``, ``vign``, ``exposure``
    """
    a = read_arf(path)
    out = {"e_lo": a.e_lo, "e_hi": a.e_hi, "e_mid": a.e_mid, "onaxis": a.onaxis,
           "survey": a.onaxis * a.corrvign, "vign": a.corrvign, "exposure": a.exposure}
    for v in out.values():
        if isinstance(v, np.ndarray):
            v.setflags(write=False)
    return out


def king_eef(r, rc, beta=1.5):
    """Encircled-energy fraction of a King profile within radius ``r`` (same units as rc)."""
    return 1.0 - (1.0 + (np.asarray(r, float) / rc) ** 2) ** (1.0 - beta)


def sample_king_radii(rng, n, rc, beta=1.5, rmax=np.inf):
    """Radii drawn from a King profile truncated at ``rmax``."""
    fmax = king_eef(rmax, rc, beta) if np.isfinite(rmax) else 1.0
    u = rng.random(n) * fmax
    return rc * np.sqrt((1.0 - u) ** (1.0 / (1.0 - beta)) - 1.0)


def sample_psf_offsets(rng, n, config):
    """PSF offsets (dx, dy) [arcsec] for ``n`` photons."""
    r = sample_king_radii(rng, n, config.psf_rc, config.psf_king_beta, config.psf_rmax)
    phi = rng.random(n) * (2 * np.pi)
    return r * np.cos(phi), r * np.sin(phi)


def smear_energies(rng, e_true, config):
    """Observed (PI) energies [keV] from true energies with the Gaussian resolution."""
    fwhm = np.sqrt(config.fwhm_0 ** 2 + config.fwhm_e * np.asarray(e_true))
    return e_true + rng.standard_normal(np.shape(e_true)) * (fwhm / 2.3548)


def efeds_exposure_distribution(vignetting):
    """Unvignetted exposures [s] and their cumulative probability over the eFEDS area.

    From the vignetted exposure ML_EXP at the 542 eFEDS cluster candidates (Klein et al.
    2022; `astro_clustermass.simulate.realism.read_efeds_clusters`) divided by the
    band ``vignetting`` of the simulation. The candidates sample the exposure map weighted
    by the number of sources detectable there, about proportional to the exposure (cluster
    counts N(>S) ~ S^-1 near the eFEDS flux limit), so each is weighted by 1 / ML_EXP to
    give the distribution over the area.

    Returns
    -------
    texp : array
        Sorted unvignetted exposures [s].
    cdf : array
        Cumulative area fraction at each (mid-step).
    """
    from .realism import read_efeds_clusters

    ml_exp = np.sort(np.asarray(read_efeds_clusters()["ML_EXP"], float))
    w = 1.0 / ml_exp
    cdf = (np.cumsum(w) - 0.5 * w) / w.sum()
    return ml_exp / vignetting, cdf


class ExposureMap:
    """Unvignetted exposure [s] over a rectangular field in (RA, Dec).

    The map is a smooth random modulation on a 2' grid, evaluated by bilinear
    interpolation, so any position (field or virtual stamp) can ask for its exposure.

    Parameters
    ----------
    ra_range, dec_range : tuple
        Field limits [deg].
    config : SimConfig
    rng : numpy Generator
    vignetting : float, optional
        Survey-averaged vignetting of the event band
        (`astro_clustermass.simulate.survey.band_vignetting`); needed by the ``"efeds"``
        exposure model, which turns the real vignetted exposures into unvignetted ones.
    """

    def __init__(self, ra_range, dec_range, config, rng, grid_deg=1.0 / 30, vignetting=None):
        from scipy.ndimage import gaussian_filter

        self.ra_range = tuple(map(float, ra_range))
        self.dec_range = tuple(map(float, dec_range))
        self.grid = grid_deg
        dec_c = 0.5 * sum(self.dec_range)
        self.cosd = np.cos(np.radians(dec_c))
        nx = int(np.ceil((self.ra_range[1] - self.ra_range[0]) * self.cosd / grid_deg)) + 2
        ny = int(np.ceil((self.dec_range[1] - self.dec_range[0]) / grid_deg)) + 2
        x = np.arange(nx) * grid_deg   # deg, along RA (great-circle scaled)
        y = np.arange(ny) * grid_deg
        # large-scale random modulation, correlation ~ 1 deg
        sig = 0.5 / grid_deg
        pad = int(3 * sig)
        g = gaussian_filter(rng.standard_normal((ny + 2 * pad, nx + 2 * pad)), sig,
                            mode="wrap")[pad:pad + ny, pad:pad + nx]
        if config.exposure_model == "efeds":
            from scipy.special import ndtr

            if vignetting is None:
                raise ValueError("the 'efeds' exposure_model needs vignetting= (the band's "
                                 "survey-averaged vignetting, survey.band_vignetting)")
            texp, cdf = efeds_exposure_distribution(vignetting)
            u = ndtr((g - g.mean()) / max(g.std(), 1e-12))
            self.map = np.interp(u, cdf, texp)
            self.shape = self.map.shape
            return
        if config.exposure_model != "gaussian":
            raise ValueError(f"exposure_model must be 'efeds' or 'gaussian', not "
                             f"{config.exposure_model!r}")
        g *= config.exposure_rms / max(g.std(), 1e-12)
        # scan stripes along RA (eFEDS was scanned in stripes of constant RA/Dec)
        phase = rng.random() * 2 * np.pi
        stripes = config.exposure_stripe * np.sin(
            2 * np.pi * x[None, :] / config.exposure_stripe_period_deg + phase)
        emap = config.exposure_mean * (1.0 + g + stripes)
        # edge taper (field borders get fewer scans)
        w = config.exposure_edge_deg
        if w > 0:
            dx = np.minimum(x, x[-1] - x) + 0.5 * grid_deg
            dy = np.minimum(y, y[-1] - y) + 0.5 * grid_deg
            tx = np.clip(dx / w, 0, 1)
            ty = np.clip(dy / w, 0, 1)
            emap *= np.sqrt(ty[:, None] * tx[None, :])
        self.map = np.clip(emap, 0.0, None)
        self.shape = self.map.shape

    def __call__(self, ra, dec):
        """Exposure [s] at (ra, dec) [deg] (0 outside the field)."""
        from scipy.ndimage import map_coordinates

        ra = np.asarray(ra, float)
        dec = np.asarray(dec, float)
        ix = (ra - self.ra_range[0]) * self.cosd / self.grid
        iy = (dec - self.dec_range[0]) / self.grid
        val = map_coordinates(self.map, [iy.ravel(), ix.ravel()], order=1, mode="nearest")
        inside = ((ra >= self.ra_range[0]) & (ra <= self.ra_range[1]) &
                  (dec >= self.dec_range[0]) & (dec <= self.dec_range[1])).ravel()
        return np.where(inside, val, 0.0).reshape(ra.shape)

    @property
    def max(self):
        return float(self.map.max())
