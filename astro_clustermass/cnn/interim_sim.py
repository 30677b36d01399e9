"""A stand-in stamp simulation used ONLY to train the interim default CNN ensemble.

The package's survey simulator (`astro_clustermass.simulate`) and EBI builder
(`astro_clustermass.ebi`) are separate work items; until they exist, this module makes
an honest but simple eFEDS-like training set so that ``cnn-ensemble`` can ship trained
weights. It is not a survey simulator: every assumption is listed here, and the
resulting ensemble's manifest says it was trained on this stand-in.

Per halo (no neighbouring halos; one 1200" stamp per halo):

- halos: M500c and z drawn from the Tinker et al. (2008) M500c mass function (colossus)
  times the comoving volume, flat LCDM H0=70, Om=0.3, Ob=0.05, sigma8=0.8, ns=0.95,
  13.3 < log10 M < 15.4, 0.02 < z < 1.3;
- L_X (0.5-2 keV rest frame, within R500): the shipped ``lx-chiu22`` relation's median
  with 0.2 dex log-normal scatter (DESIGN.md: the seed's simulation has about 0.2 dex);
- kT: Arnaud et al. (2005) M-T, M500 E(z) = 10^14.58 (T/5 keV)^1.71 Msun (h70), with
  0.07 dex scatter;
- cluster photons: expected counts = L_X converted to a 0.2-2.3 keV count rate with the
  package's ECF table (`astro_clustermass.ecf`, absorbed thermal spectrum through the
  eFEDS ARF) x 1.2 ks (eFEDS vignetted depth), scaled by the beta-model flux out to
  2 R500 relative to R500; positions from an elliptical beta model (beta = 2/3,
  r_c = U(0.1, 0.35) R500, axis ratio U(0.6, 1)) truncated at 2 R500; energies from
  the absorbed thermal continuum (`astro_clustermass.spectra`) times the ARF;
- AGN: Moretti et al. (2003) 0.5-2 keV logN-logS above 5e-16 erg/s/cm^2, power law
  Gamma = 1.9 folded through the ARF, positions uniform in the stamp;
- background: 2.0e-3 ct/s/arcmin^2 in 0.5-2 keV (scaled to 0.2-2.3 keV with the shipped
  background spectrum, whose shape also gives the energies), uniform, x 1.2 ks;
- PSF: circular Gaussian, sigma = 12" (half-energy width 28");
- detection ("forced" at the halo position, on the photons): Poisson maximum
  likelihood fit of the radial profile within 120" (4" bins) with a flat background
  plus either a PSF (point) or a PSF-convolved beta model (core radius on a grid), the
  background density measured in the stamp outside 300"; photons within 36" of AGN
  with >= 8 counts (detected point sources) are left out of the fit (they stay in the
  EBI: the seed keeps point sources in the images);
  ``DET_LIKE`` = lnL(best) - lnL(background only), ``EXT_LIKE`` =
  max(0, lnL(extended) - lnL(point)), ``ML_RATE`` = fitted source counts / 1.2 ks with
  its Poisson error.

EBIs follow seed 000 sect. 2.3 and App. A: photons 0.25-2.30 keV in a 300 x 300 pixel
(4") square centred on the halo, 10 equal bands, rebinned to 50 x 50 x 10, smoothed with
the normalised (3, 3, 11) Gaussian kernel exp(-((i/1)^2 + (j/1)^2 + (k/5)^2) / (2 0.75^2))
(`scipy.signal.convolve`, 'same'), clipped at 36.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EBI_PARAMETERS", "simulate_stamps", "ebi_from_photons"]

#: EBI parameters of the images made here (the seed's); keys follow
#: ``astro_clustermass.ebi.EBIParameters`` where known.
EBI_PARAMETERS = {"npix": 300, "pixel_arcsec": 4.0, "emin_keV": 0.25, "emax_keV": 2.30,
                  "nbands": 10, "rebin": 50, "kernel_size": [3, 3, 11], "kernel_sigma": 0.75,
                  "clip": 36.0}

T_EXP = 1200.0          # s, eFEDS vignetted depth
PSF_SIGMA = 12.0        # arcsec
HALF = 600.0            # arcsec, half side of the stamp
BKG_05_2 = 2.0e-3       # ct/s/arcmin^2, 0.5-2 keV
LX_SCATTER_DEX = 0.2
T_SCATTER_DEX = 0.07
AGN_DETECTED_COUNTS = 8   # AGN with at least this many counts are detected point sources
MASK_RADIUS = 36.0        # arcsec around them is left out of the cluster's fit


def _kernel():
    i = np.arange(-1, 2)[:, None, None]
    j = np.arange(-1, 2)[None, :, None]
    k = np.arange(-5, 6)[None, None, :]
    g = np.exp(-((i / 1.0) ** 2 + (j / 1.0) ** 2 + (k / 5.0) ** 2) / (2 * 0.75 ** 2))
    return g / g.sum()


_KERNEL = _kernel()


def ebi_from_photons(x, y, energy):
    """Seed-000 EBI (50, 50, 10) = (y, x, band) from photon offsets [arcsec] and keV."""
    from scipy.signal import convolve

    p = EBI_PARAMETERS
    half = p["npix"] * p["pixel_arcsec"] / 2
    edges_xy = np.linspace(-half, half, p["rebin"] + 1)
    edges_e = np.linspace(p["emin_keV"], p["emax_keV"], p["nbands"] + 1)
    h, _ = np.histogramdd(np.column_stack([y, x, energy]), bins=(edges_xy, edges_xy, edges_e))
    sm = convolve(h, _KERNEL, mode="same")
    return np.clip(sm, 0.0, p["clip"]).astype(np.float32)


class _Model:
    """Everything that is computed once: cosmology, spectra, templates."""

    def __init__(self):
        from astropy.cosmology import FlatLambdaCDM
        from astropy.io import fits

        from .. import spectra
        from ..relations import load_relation

        self.cosmo = FlatLambdaCDM(H0=70, Om0=0.3, Ob0=0.05, Tcmb0=0.0)
        self.lx_rel = load_relation("lx-chiu22")
        e_lo, e_hi, area = spectra.read_arf()
        self.e_grid = np.linspace(0.2, 2.3, 421)
        mid = 0.5 * (e_lo + e_hi)
        self.area = np.interp(self.e_grid, mid, area)
        self.spectra = spectra
        # background energies from the shipped background spectrum (10 eV channels)
        import os

        path = os.path.join(os.path.dirname(spectra.ARF_PATH), "efeds_background_spectrum.fits")
        d = fits.open(path)[1].data
        ch = np.asarray(d["CHANNEL"], float)
        cts = np.asarray(d["COUNTS"], float)
        e = (ch - 0.5) * 0.01
        sel = (e >= 0.2) & (e < 2.3)
        self.bkg_e = e[sel]
        self.bkg_p = cts[sel] / cts[sel].sum()
        frac = cts[(e >= 0.5) & (e < 2.0)].sum() / cts[sel].sum()
        self.bkg_density = BKG_05_2 / frac / 3600.0 * T_EXP  # counts per arcsec^2
        # AGN power law Gamma=1.9: counts 0.2-2.3 per unit 0.5-2 keV energy flux
        nh = 3e20
        pl = lambda E: E ** -1.9 * spectra.absorption(E, nh)
        eg = np.linspace(0.5, 2.0, 301)
        eflux = np.trapezoid(eg * pl(eg), eg) * 1.602176634e-9  # erg per unit norm
        rate = spectra.fold(pl, e_lo, e_hi, area, band=(0.2, 2.3))
        self.agn_counts_per_flux = rate / eflux * T_EXP
        self.agn_cdf = self._cdf(pl(self.e_grid) * self.area)
        self.nh = nh
        self._templates()

    def _cdf(self, dens):
        c = np.cumsum(dens)
        return c / c[-1]

    def draw_energies(self, cdf, n, rng):
        return np.interp(rng.random(n), cdf, self.e_grid)

    def cluster_cdf(self, kT, z):
        e_rest = self.e_grid * (1 + z)
        dens = self.spectra.thermal_photon_spectrum(e_rest, kT) * \
            self.spectra.absorption(self.e_grid, self.nh) * self.area
        return self._cdf(dens)

    def _templates(self):
        """Radial templates (fraction of source counts per 4" annulus out to 120")."""
        rng = np.random.default_rng(12345)
        self.r_edges = np.arange(0, 121, 4.0)
        self.r_area = np.pi * np.diff(self.r_edges ** 2)
        n = 400_000
        psf = rng.normal(0, PSF_SIGMA, (n, 2))
        temps = {"point": np.histogram(np.hypot(*psf.T), self.r_edges)[0] / n}
        self.rc_grid = np.array([4, 8, 12, 18, 27, 40, 60, 90, 135.0])
        for rc in self.rc_grid:
            r = _beta_radii(rng, n, rc, 10 * rc)
            phi = rng.uniform(0, 2 * np.pi, n)
            xy = np.column_stack([r * np.cos(phi), r * np.sin(phi)]) + psf
            temps[float(rc)] = np.histogram(np.hypot(*xy.T), self.r_edges)[0] / n
        self.templates = temps


def _beta_radii(rng, n, rc, rmax):
    """Projected radii of a beta=2/3 model truncated at rmax: S ~ (1 + (r/rc)^2)^-1.5."""
    xmax = rmax / rc
    fmax = 1 - 1 / np.sqrt(1 + xmax ** 2)
    u = rng.random(n) * fmax
    return rc * np.sqrt(1 / (1 - u) ** 2 - 1)


def _fit(counts, bkg, template):
    """Max-likelihood source counts S >= 0 for mu = bkg + S*template; returns (lnL, S)."""
    from scipy.optimize import minimize_scalar

    def nll(s):
        mu = bkg + s * template
        return -(np.sum(counts * np.log(mu)) - mu.sum())

    upper = max(10.0, 3 * counts.sum())
    res = minimize_scalar(nll, bounds=(0.0, upper), method="bounded",
                          options={"xatol": 1e-3})
    s = float(res.x)
    return -float(res.fun), s


def _detect(model, x, y, mask_xy=()):
    keep = np.ones(len(x), bool)
    for px, py in mask_xy:  # photons of detected point sources are not the cluster's
        keep &= np.hypot(x - px, y - py) > MASK_RADIUS
    x, y = x[keep], y[keep]
    r = np.hypot(x, y)
    counts = np.histogram(r, model.r_edges)[0].astype(float)
    # local background (particles, diffuse, unresolved AGN) from the stamp outside 300"
    outer = r > 300.0
    density = max(outer.sum(), 1) / ((2 * HALF) ** 2 - np.pi * 300.0 ** 2)
    bkg = density * model.r_area
    lnl0 = float(np.sum(counts * np.log(bkg)) - bkg.sum())
    lnl_pt, s_pt = _fit(counts, bkg, model.templates["point"])
    best_ext, s_ext, rc_best = -np.inf, 0.0, np.nan
    for rc in model.rc_grid:
        lnl, s = _fit(counts, bkg, model.templates[float(rc)])
        if lnl > best_ext:
            best_ext, s_ext, rc_best = lnl, s, rc
    ext_like = max(0.0, best_ext - lnl_pt)
    if best_ext >= lnl_pt:
        det_like, s_best, frac = best_ext - lnl0, s_ext, model.templates[float(rc_best)].sum()
    else:
        det_like, s_best, frac = lnl_pt - lnl0, s_pt, model.templates["point"].sum()
    rate = s_best / T_EXP
    # Poisson error of the fitted counts (source + background in the fit region)
    in_fit = counts.sum()
    err = np.sqrt(max(in_fit, 1.0)) / max(frac, 1e-3) / T_EXP
    return det_like, ext_like, rate, err, rc_best


def sample_halos(n, rng, logm_range=(13.3, 15.4), z_range=(0.02, 1.3)):
    """M500c [Msun] and z of ``n`` halos from the Tinker08 mass function x volume."""
    from colossus.cosmology import cosmology as ccosmo
    from colossus.lss import mass_function

    ccosmo.setCosmology("acm_fid", params={"flat": True, "H0": 70.0, "Om0": 0.3,
                                           "Ob0": 0.05, "sigma8": 0.8, "ns": 0.95},
                        persistence="")
    from astropy.cosmology import FlatLambdaCDM

    cosmo = FlatLambdaCDM(H0=70, Om0=0.3, Ob0=0.05, Tcmb0=0.0)
    h = 0.7
    lm = np.arange(logm_range[0], logm_range[1] + 1e-9, 0.02)
    zz = np.arange(z_range[0], z_range[1] + 1e-9, 0.02)
    w = np.empty((len(zz), len(lm)))
    for i, z in enumerate(zz):
        dndlnm = mass_function.massFunction(10 ** lm * h, z, mdef="500c", model="tinker08",
                                            q_out="dndlnM") * h ** 3  # per Mpc^3 per ln M
        dvdz = cosmo.differential_comoving_volume(z).value  # Mpc^3 / sr
        w[i] = dndlnm * dvdz * np.log(10) * 0.02 * 0.02
    p = (w / w.sum()).ravel()
    idx = rng.choice(p.size, size=n, p=p)
    iz, im = np.unravel_index(idx, w.shape)
    logm = lm[im] + rng.uniform(-0.01, 0.01, n)
    z = np.clip(zz[iz] + rng.uniform(-0.01, 0.01, n), 0.01, None)
    # expected number per 140 deg^2, for the record
    n_per_140 = w.sum() * 140 * (np.pi / 180) ** 2
    return 10 ** logm, z, float(n_per_140)


def simulate_stamps(n_halos, seed=0, chunk=0, progress=True, model=None,
                    selection="EXT_LIKE > 6 & DET_LIKE > 5"):
    """Simulate ``n_halos`` stamps and keep the detections passing ``selection``.

    Returns
    -------
    ebi : array (n_kept, 50, 50, 10)
    catalog : `~astropy.table.Table` of the kept halos
    info : dict (numbers simulated and kept, background and AGN levels)
    """
    import astropy.units as u
    from astropy.table import Table

    from ..ecf import luminosity_to_count_rate

    rng = np.random.default_rng([seed, chunk])
    model = model or _Model()
    m, z, n140 = sample_halos(n_halos, rng)
    cosmo = model.cosmo
    ez = cosmo.efunc(z)
    lx = model.lx_rel.mean_observable(m * u.Msun, z).to_value(u.erg / u.s)
    lx = lx * 10 ** (LX_SCATTER_DEX * rng.standard_normal(n_halos))
    kt = 5.0 * (m * ez / 10 ** 14.58) ** (1 / 1.71) * 10 ** (T_SCATTER_DEX * rng.standard_normal(n_halos))
    rho_c = cosmo.critical_density(z).to_value(u.Msun / u.kpc ** 3)
    r500_kpc = (3 * m / (4 * np.pi * 500 * rho_c)) ** (1 / 3)
    da = cosmo.angular_diameter_distance(z).to_value(u.kpc)
    r500 = r500_kpc / da * 206264.806  # arcsec
    rate = luminosity_to_count_rate(lx * u.erg / u.s, z, np.clip(kt, 0.5, 15)).to_value(u.ct / u.s)
    rc_frac = rng.uniform(0.1, 0.35, n_halos)
    q = rng.uniform(0.6, 1.0, n_halos)
    ang = rng.uniform(0, np.pi, n_halos)
    # flux out to 2 R500 relative to R500 for a beta=2/3 model
    f = lambda xx: 1 - 1 / np.sqrt(1 + xx ** 2)
    scale = f(2 / rc_frac) / f(1 / rc_frac)
    mu_cl = rate * T_EXP * scale
    area = (2 * HALF) ** 2
    smin = 5e-16
    s0 = 1.48e-14
    n_of_s = lambda s: 6150 * (2e-15) ** 1.82 / (s ** 1.82 + s0 ** 1.22 * s ** 0.60)
    agn_per_stamp = n_of_s(smin) * area / 3600.0 ** 2
    s_grid = np.logspace(np.log10(smin), -11, 400)
    cdf_s = 1 - n_of_s(s_grid) / n_of_s(smin)

    ebis = {}
    from astropy.table import Table as _T

    from .dataset import apply_selection

    def sel_fn(row):
        return bool(apply_selection(_T({k: [v] for k, v in row.items()}), selection)[0])

    cols = {k: np.empty(n_halos) for k in ("DET_LIKE", "EXT_LIKE", "ML_RATE", "ML_RATE_ERR",
                                           "n_cluster_photons", "rc_fit")}
    it = range(n_halos)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"stamps (chunk {chunk})", unit="stamp", mininterval=2)
    for i in it:
        # cluster
        n_cl = rng.poisson(mu_cl[i])
        rc = rc_frac[i] * r500[i]
        r = _beta_radii(rng, n_cl, rc, 2 * r500[i])
        phi = rng.uniform(0, 2 * np.pi, n_cl)
        xe, ye = r * np.cos(phi) * np.sqrt(q[i]), r * np.sin(phi) / np.sqrt(q[i])
        ca, sa = np.cos(ang[i]), np.sin(ang[i])
        xc = ca * xe - sa * ye + rng.normal(0, PSF_SIGMA, n_cl)
        yc = sa * xe + ca * ye + rng.normal(0, PSF_SIGMA, n_cl)
        ec = model.draw_energies(model.cluster_cdf(kt[i], z[i]), n_cl, rng)
        # AGN
        n_agn = rng.poisson(agn_per_stamp)
        s = np.interp(rng.random(n_agn), cdf_s, s_grid)
        k_agn = rng.poisson(s * model.agn_counts_per_flux)
        pos = rng.uniform(-HALF, HALF, (n_agn, 2))
        xa = np.repeat(pos[:, 0], k_agn) + rng.normal(0, PSF_SIGMA, k_agn.sum())
        ya = np.repeat(pos[:, 1], k_agn) + rng.normal(0, PSF_SIGMA, k_agn.sum())
        ea = model.draw_energies(model.agn_cdf, k_agn.sum(), rng)
        # background
        n_b = rng.poisson(model.bkg_density * area)
        xb, yb = rng.uniform(-HALF, HALF, (2, n_b))
        eb = rng.choice(model.bkg_e, size=n_b, p=model.bkg_p) + rng.uniform(0, 0.01, n_b)
        x = np.concatenate([xc, xa, xb])
        y = np.concatenate([yc, ya, yb])
        e = np.concatenate([ec, ea, eb])
        bright = k_agn >= AGN_DETECTED_COUNTS
        det, ext, ml, mle, rcf = _detect(model, x, y, pos[bright])
        cols["DET_LIKE"][i], cols["EXT_LIKE"][i] = det, ext
        cols["ML_RATE"][i], cols["ML_RATE_ERR"][i] = ml, mle
        cols["n_cluster_photons"][i] = n_cl
        cols["rc_fit"][i] = rcf
        if sel_fn({"DET_LIKE": det, "EXT_LIKE": ext}):
            ebis[i] = ebi_from_photons(x, y, e)
    cat = Table({"cluster_id": np.arange(n_halos) + chunk * 10_000_000,
                 "realisation": np.full(n_halos, chunk), "M500c": m, "z": z, "LX": lx, "kT": kt,
                 "R500_arcsec": r500, "rc_over_R500": rc_frac, "axis_ratio": q,
                 "RA": np.full(n_halos, np.nan), "DEC": np.full(n_halos, np.nan), **cols})
    cat["M500c"].unit = "Msun"
    cat["LX"].unit = "erg/s"
    cat["kT"].unit = "keV"
    cat["ML_RATE"].unit = cat["ML_RATE_ERR"].unit = "ct/s"
    kept = np.array(sorted(ebis), dtype=int)
    cat = cat[kept]
    ebi = np.stack([ebis[i] for i in kept]) if len(kept) else np.zeros((0, 50, 50, 10), np.float32)
    info = {"n_simulated": int(n_halos), "n_kept": int(len(kept)), "selection": selection,
            "halos_per_140deg2_in_range": n140, "agn_per_stamp": float(agn_per_stamp),
            "background_counts_per_stamp": float(model.bkg_density * area)}
    return ebi, cat, info
