"""Source detection on simulated photons: candidates, then a maximum-likelihood source fit.

`detect_patch` runs the stages in order: `_patch_image` (photons binned, exposure),
`_background_map`, `_candidates`, `_refine_positions`, the fits (`mlfit._SourceFits`),
`_catalogue` (eSASS columns) and `_dedupe` (clean-up).

This is a compact stand-in for the eSASS chain (erbox -> erbackmap -> ermldet), run on
the photons of one patch (a field tile or a stamp) in its tangent plane:

1. **Image and background.** Photons are binned in 4" pixels. The background map is
   estimated from the data: pixels near significant emission (Poisson significance on
   the image smoothed at 28" and at 72") are masked, and the unmasked counts divided
   by the exposure are averaged in 256" blocks (3 x 3 block smoothing), times the
   exposure map. Nothing is taken from the simulation truth.
2. **Candidates.** The image is smoothed with Gaussians of sigma = ``det_scales``
   pixels (10", 28", 72"); at every local maximum the smoothed counts and background
   are turned into effective counts in a beam of area 4 pi sigma^2 and the Poisson
   probability of at least that many from the background; maxima with
   -ln P >= ``det_cand_like`` are candidates, merged across scales. Positions are
   refined by mean-shift on the photons.
3. **Fit** (`astro_clustermass.simulate.mlfit`). Around each candidate, photons within
   ``det_fit_radius`` (300") are binned in annuli. The background density is fixed from
   the background map (as eSASS ermldet does), and the other candidates' current
   models (King profiles, their share of each annulus from a tabulated offset
   integral) are added to it: an
   isolated fit first, then two passes in which every candidate is refitted with the
   others' models of the previous pass (weaker extended neighbours left out, being
   mostly fragments of the source, and so are models whose likelihood gain is below
   ``det_model_min_dlnl`` = 5, the catalogue's own minimum: noise peaks in a cluster's
   outskirts otherwise eat its wings), and a third pass only for the extended candidates
   with a stronger point-like one within ``det_ext_refit_radius`` (120"), which
   removes extended "ghosts" in the wings of bright point sources (see
   ``_extended_near_stronger_point``). Three models are fitted by maximising
   the Poisson likelihood (Cash statistic) in the source counts S >= 0:
   background only; background + PSF (point); background + PSF-convolved beta model
   with beta = 2/3 and core radius EXT on a log grid (``ext_grid``: 28 values, 8"-300";
   EXT between the grid values from a parabola in ln EXT through the likelihoods of the
   best grid value and its neighbours, as ``ermldet`` fits it continuously; reported at
   most ``ext_report_max`` = 60", eFEDS's limits).
   The PSF is the simulator's King profile (beta = 1.5), and a beta = 2/3 model
   convolved with it is exactly a King profile of core r_c(PSF) + EXT (both are 2-D
   Poisson kernels), so the extended templates are analytic.
   An extended candidate better fitted by two point sources than by an extended model
   with a point-like core becomes point-like (`astro_clustermass.simulate.blends`; the
   analogue of ermldet's ``nmulsou = 2``).
4. **Likelihoods (eSASS conventions).** Reported from the best extended model with
   EXT <= ``ext_report_max`` (60", ``ermldet``'s extmax; ``det_report_capped_extent``),
   while the wider fit (``EXT_FIT``) stays the source's model for its neighbours and the
   clean-up: a weak, very wide model could otherwise take in an offset of the background
   map over the fit region and report many times the source's counts.
   With Delta C = C_bkg - C_model (C = Cash
   statistic), DET_LIKE = -ln P where P = Q(nu/2, Delta C / 2) is the chance probability
   of a background fluctuation (Q: regularised upper incomplete gamma, nu = 3 free
   parameters for a point source: rate and position; nu = 4 for an extended one);
   EXT_LIKE = -ln Q(1/2, (C_point - C_ext)/2) when the extended model is better, else 0
   (and EXT = 0). ML_CTS = S (total model counts), ML_RATE = ML_CTS / ML_EXP where
   ML_EXP is the *vignetted* exposure at the position (unvignetted x the survey-averaged
   vignetting of the 0.2-2.3 keV band), so ML_RATE is an on-axis, full-PSF count rate as
   in eSASS; ML_RATE_ERR from the curvature of the likelihood; ML_BKG = background
   counts per arcmin^2 at the position.
5. **Clean-up.** A weaker detection within 15" of a stronger one, or an extended one
   within max(2 EXT, 40", r_b, 1.5 EXT') of a stronger extended one (EXT' its own
   extent) is dropped, where r_b is the
   radius out to which the stronger source's fitted model is brighter than the
   background (this merges the outskirts of bright cool-core clusters, which a single
   beta = 2/3 model leaves as residual, back into the cluster).
   After that, a detection is reported only with a point-like peak: ``BOX_LIKE``, the
   Poisson significance -ln P of the counts in a beam of the smallest scale (10") at
   its position under the background, at least ``det_box_like_min`` (6), the analogue
   of eSASS fitting only the sources of erbox's PSF-sized box detection (sums of faint
   AGN and cluster outskirts without a peak are not reported).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.special import gammaincc, gammaln

# _fit_counts and _extended_near_stronger_point are used through this module by the tests
from .mlfit import (  # noqa: F401
    _extended_near_stronger_point,
    _fit_counts,
    _pairs,
    _SourceFits,
    annulus_edges,
)

__all__ = ["detect_patch", "det_like_from_dc", "ext_like_from_dc", "annulus_edges"]


def _log_q(a, x):
    """ln Q(a, x), accurate also where Q underflows."""
    x = np.asarray(x, float)
    with np.errstate(divide="ignore"):
        q = np.log(gammaincc(a, np.maximum(x, 0.0)))
    # asymptotic: Q(a,x) ~ x^(a-1) e^-x / Gamma(a) (1 + (a-1)/x)
    big = ~np.isfinite(q) | (x > 200)
    if np.any(big):
        xb = np.maximum(x[big], 1e-300)
        q[big] = (a - 1) * np.log(xb) - xb - gammaln(a) + np.log1p((a - 1) / xb)
    return q


def det_like_from_dc(delta_c, nu):
    """eSASS detection likelihood -ln Q(nu/2, Delta C / 2) (0 when Delta C <= 0)."""
    dc = np.asarray(delta_c, float)
    out = -_log_q(0.5 * nu, 0.5 * np.maximum(dc, 0.0))
    return np.where(dc > 0, out, 0.0)


def ext_like_from_dc(delta_c):
    """Extent likelihood -ln Q(1/2, Delta C / 2) for one extra parameter; 0 if not better."""
    return det_like_from_dc(delta_c, 1)


def _poisson_like(n, b):
    """-ln P(N >= n | b) for continuous n (regularised lower gamma) ; 0 where n <= b."""
    from scipy.special import gammainc

    n = np.asarray(n, float)
    b = np.maximum(np.asarray(b, float), 1e-12)
    # P(N >= n) = P(n, b) (regularised lower incomplete gamma) for integer n
    with np.errstate(divide="ignore"):
        p = gammainc(np.maximum(n, 1e-6), b)
        out = -np.log(np.maximum(p, 1e-300))
    return np.where(n > b, out, 0.0)


def _interp_index(coords, n):
    """Lower sample index and weight of linear interpolation at fractional indices
    ``coords`` on a grid of ``n`` samples, edge values held outside (as
    ``ndimage.map_coordinates(order=1, mode="nearest")``)."""
    c = np.clip(np.asarray(coords, float), 0.0, n - 1.0)
    i0 = np.clip(np.floor(c).astype(int), 0, max(n - 2, 0))
    i1 = np.minimum(i0 + 1, n - 1)
    return i0, i1, c - i0


def _upsample_bilinear(arr, yy, xx):
    """Bilinear interpolation of ``arr`` at the grid ``yy`` x ``xx`` (fractional indices):
    separable, one pass along each axis instead of a per-pixel interpolation."""
    y0, y1, wy = _interp_index(yy, arr.shape[0])
    x0, x1, wx = _interp_index(xx, arr.shape[1])
    rows = (1.0 - wy)[:, None] * arr[y0] + wy[:, None] * arr[y1]
    return rows[:, x0] * (1.0 - wx) + rows[:, x1] * wx


def _smooth(img, s):
    """Gaussian smoothing of the counts image used by candidates and background."""
    return ndimage.gaussian_filter(img, s, mode="constant", truncate=3.0)


def _background_map(img, expo, config, smoothed=None):
    """Background counts per pixel from the data (sources masked), see module docstring.

    ``smoothed``: optional dict sigma -> ``_smooth(img, sigma)`` already computed.
    """
    tot_exp = expo.sum()
    if tot_exp <= 0:
        return np.zeros_like(img, dtype=float)
    r0 = img.sum() / tot_exp
    b0 = r0 * expo
    mask = np.zeros(img.shape, bool)
    smoothed = {} if smoothed is None else smoothed
    for s in config.det_bkg_mask_scales:
        s = float(s)
        S = smoothed[s] if s in smoothed else _smooth(img.astype(float), s)
        B = b0          # the exposure map is smooth on these scales
        beam = 4 * np.pi * s * s
        excess = (S - B) * beam
        mask |= excess > 3.0 * np.sqrt(B * beam) + 2.0
    mask = ndimage.binary_dilation(mask, iterations=6)
    blk = int(config.det_bkg_block)
    ny, nx = img.shape
    by, bx = -(-ny // blk), -(-nx // blk)
    pad = ((0, by * blk - ny), (0, bx * blk - nx))
    c = np.pad(np.where(mask, 0, img), pad).reshape(by, blk, bx, blk).sum((1, 3)).astype(float)
    e = np.pad(np.where(mask, 0, expo), pad).reshape(by, blk, bx, blk).sum((1, 3))
    c = ndimage.uniform_filter(c, 3, mode="nearest") * 9
    e = ndimage.uniform_filter(e, 3, mode="nearest") * 9
    rate = np.where(e > 0, c / np.maximum(e, 1e-12), r0)
    # upsample block rates (bilinear) to pixels
    yy = (np.arange(ny) + 0.5) / blk - 0.5
    xx = (np.arange(nx) + 0.5) / blk - 0.5
    full = _upsample_bilinear(rate, yy, xx)
    return full * expo


def _box_like_map(smoothed, bkg, config):
    """erbox-like point-source significance per pixel: -ln P of the counts in a PSF-sized
    beam (the image smoothed at the smallest scale, ``det_scales[0]``) under the
    background."""
    s = float(config.det_scales[0])
    beam = 4 * np.pi * s * s
    return _poisson_like(smoothed[s] * beam, bkg * beam)


def _at_pixels(img, x, y, h, pix):
    """Values of ``img`` at the pixels holding tangent-plane positions (x, y) [arcsec]."""
    n = img.shape[0]
    ix = np.clip(((np.asarray(x) + h) / pix).astype(int), 0, n - 1)
    iy = np.clip(((np.asarray(y) + h) / pix).astype(int), 0, n - 1)
    return img[iy, ix]


def _shift_to_weighted_mean(pos, i, w, dx, dy, n):
    """Move each position (in place) by the ``w``-weighted mean offset of its photons
    (pairs ``i`` -> offsets ``dx, dy``); positions without weight stay."""
    sw = np.bincount(i, w, minlength=n)
    sx = np.bincount(i, w * dx, minlength=n)
    sy = np.bincount(i, w * dy, minlength=n)
    ok = sw > 0
    pos[ok, 0] += sx[ok] / sw[ok]
    pos[ok, 1] += sy[ok] / sw[ok]


def _limit_shift(pos, pos0, max_shift):
    """Positions moved at most ``max_shift`` from ``pos0`` (None: no limit)."""
    if max_shift is None:
        return pos
    d = np.hypot(*(pos - pos0).T)
    f = np.where(d > max_shift, max_shift / np.maximum(d, 1e-12), 1.0)
    return pos0 + (pos - pos0) * f[:, None]


def _mean_shift(ctree_pos, ptree, px, py, sigma, iters=3, max_shift=None):
    """Vectorised mean-shift of positions ``ctree_pos`` (n, 2) on photons, Gaussian sigma (n,)."""
    from scipy.spatial import cKDTree

    pos0 = np.array(ctree_pos, float)
    pos = pos0.copy()
    sigma = np.broadcast_to(np.asarray(sigma, float), (len(pos),))
    n = len(pos)
    for _ in range(iters):
        i, j, _d = _pairs(cKDTree(pos), ptree, 3 * sigma.max())
        dx = px[j] - pos[i, 0]
        dy = py[j] - pos[i, 1]
        w = np.exp(-0.5 * (dx * dx + dy * dy) / sigma[i] ** 2)
        _shift_to_weighted_mean(pos, i, w, dx, dy, n)
    return _limit_shift(pos, pos0, max_shift)


def _ml_position(pos, ptree, px, py, a, bdens, iters=6, rmax=None, max_shift=None):
    """Maximum-likelihood position of a King source (core ``a``) over a flat background.

    EM-style fixed point of d lnL / d x0 = 0 for S(r) ~ (1 + r^2/a^2)^-1.5:
    x0 = sum w_j x_j / (a^2 + r_j^2) / sum w_j / (a^2 + r_j^2), with w_j the
    probability that photon j comes from the source (vectorised over positions).
    """
    from scipy.spatial import cKDTree

    pos0 = np.array(pos, float)
    pos = pos0.copy()
    n = len(pos)
    a = np.broadcast_to(np.asarray(a, float), (n,))
    rmax = rmax if rmax is not None else 3 * a.max() + 30.0
    s = None
    for _ in range(iters):
        i, j, _d = _pairs(cKDTree(pos), ptree, rmax)
        dx = px[j] - pos[i, 0]
        dy = py[j] - pos[i, 1]
        r2 = dx * dx + dy * dy
        ai2 = a[i] ** 2
        if s is None:
            ncnt = np.bincount(i, minlength=n)
            s = np.maximum(ncnt - bdens * np.pi * rmax ** 2, 1.0)
        eef = 1.0 - (1.0 + rmax ** 2 / a ** 2) ** -0.5
        dens = s[i] / (2 * np.pi * ai2) * (1.0 + r2 / ai2) ** -1.5
        w = dens / (dens + bdens[i])
        s = np.maximum(np.bincount(i, w, minlength=n) / eef, 1e-3)
        _shift_to_weighted_mean(pos, i, w / (ai2 + r2), dx, dy, n)
        pos = _limit_shift(pos, pos0, max_shift)
    return pos


def _patch_image(x, y, half_size, exposure_fn, pix):
    """Stage 1: photons cropped to the patch and binned in pixels, and the exposure image.

    Returns (x, y, img, cen, h, expo): the photons inside, the counts image, the pixel
    centres [arcsec], the half side actually used (a whole number of pixels) and the
    unvignetted exposure per pixel (evaluated on a coarse grid, bilinear to pixels).
    """
    npx = int(np.ceil(2 * half_size / pix))
    h = npx * pix / 2
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    sel = (np.abs(x) < h) & (np.abs(y) < h)
    x, y = x[sel], y[sel]
    edges = np.linspace(-h, h, npx + 1)
    img, _, _ = np.histogram2d(y, x, bins=(edges, edges))
    cen = 0.5 * (edges[1:] + edges[:-1])
    step = 8
    cg = cen[::step]
    gx, gy = np.meshgrid(cg, cg)
    ecoarse = exposure_fn(gx, gy)
    yy = np.arange(npx) / step
    expo = _upsample_bilinear(ecoarse, yy, yy)
    return x, y, img, cen, h, expo


def _candidates(smoothed, bkg, expo, cen, config):
    """Stage 2: local maxima of the smoothed images that are unlikely under the background,
    merged across scales (strongest first). Returns positions (n, 2) [arcsec] and the
    index of the scale each was found at."""
    from scipy.spatial import cKDTree

    cx, cy, cs, cl = [], [], [], []
    for si, (s, thr) in enumerate(zip(config.det_scales, config.det_cand_like)):
        S = smoothed[float(s)]
        B = bkg         # smooth (block-interpolated background map)
        size = max(3, int(2 * s) | 1)
        peak = (S == ndimage.maximum_filter(S, size=size, mode="constant")) & (S > B) \
            & (expo > 0)
        iy, ix = np.nonzero(peak)
        beam = 4 * np.pi * s * s
        like = _poisson_like(S[iy, ix] * beam, B[iy, ix] * beam)
        ok = like >= thr
        cx.append(cen[ix[ok]])
        cy.append(cen[iy[ok]])
        cs.append(np.full(ok.sum(), si))
        cl.append(like[ok])
    cx, cy, cs, cl = map(np.concatenate, (cx, cy, cs, cl))
    if cx.size == 0:
        return np.zeros((0, 2)), np.zeros(0, int)
    scales_as = np.asarray(config.det_scales) * config.pixel
    order = np.argsort(-cl)
    cx, cy, cs = cx[order], cy[order], cs[order]
    ctree = cKDTree(np.column_stack([cx, cy]))
    alive = np.ones(cx.size, bool)
    rmerge = 1.5 * scales_as.max()
    for i in range(cx.size):
        if not alive[i]:
            continue
        for j in ctree.query_ball_point([cx[i], cy[i]], rmerge):
            if j > i and alive[j]:
                d = np.hypot(cx[i] - cx[j], cy[i] - cy[j])
                if d < 1.5 * min(scales_as[cs[i]], scales_as[cs[j]]):
                    alive[j] = False
    return np.column_stack([cx[alive], cy[alive]]), cs[alive]


def _refine_positions(cpos, cs, ptree, x, y, bd_img, h, config):
    """Stage 3: two starting positions per candidate, refined on the photons: one for
    the point model (mean shift at 8", then the ML position of a PSF) and one for the
    extended models (mean shift at the candidate's scale, then the ML position of a
    wider King profile)."""
    pix = config.pixel
    sa = (np.asarray(config.det_scales) * pix)[cs]
    n = len(cpos)
    pos_pt = _mean_shift(cpos, ptree, x, y, np.full(n, 8.0), max_shift=1.5 * sa)
    pos_ext = _mean_shift(cpos, ptree, x, y, np.clip(sa, 12.0, 30.0), max_shift=1.5 * sa)
    bd0 = ndimage.map_coordinates(bd_img, [(cpos[:, 1] + h) / pix - 0.5,
                                           (cpos[:, 0] + h) / pix - 0.5], order=1, mode="nearest")
    pos_pt = _ml_position(pos_pt, ptree, x, y, config.psf_rc, bd0, rmax=40.0, max_shift=12.0)
    pos_ext = _ml_position(pos_ext, ptree, x, y, config.psf_rc + np.clip(sa, 8.0, 60.0), bd0,
                           rmax=120.0, max_shift=np.clip(sa, 12.0, 40.0))
    return pos_pt, pos_ext


def _catalogue(fits, f, cs, exposure_fn, vignetting, bd_img, h, config):
    """Stage 5: eSASS columns from the final fits (module docstring, step 4)."""
    pix = config.pixel
    ext_fit = np.where(f["ll_e"] > f["ll_pt"], f["ext"], 0.0)
    if config.det_report_capped_extent:
        f = dict(f, ll_e=f["ll_c"], s_e=f["s_c"], fi_e=f["fi_c"], ext=f["ext_c"])
    ll_pt, ll_e = f["ll_pt"], f["ll_e"]
    dl_pt = det_like_from_dc(2 * ll_pt, 3)
    dl_ex = det_like_from_dc(2 * ll_e, 4)
    is_ext = ll_e > ll_pt
    ext_like = np.where(is_ext, ext_like_from_dc(2 * (ll_e - ll_pt)), 0.0)
    det_like = np.where(is_ext, dl_ex, dl_pt)
    cts = np.where(is_ext, f["s_e"], f["s_pt"])
    cts_err = 1.0 / np.sqrt(np.maximum(np.where(is_ext, f["fi_e"], f["fi_pt"]), 1e-12))
    p_pt, p_ex = fits.positions(f)
    pos = np.where(is_ext[:, None], p_ex, p_pt)
    expo_v = exposure_fn(pos[:, 0], pos[:, 1]) * vignetting
    bkg_dens = ndimage.map_coordinates(bd_img, [(pos[:, 1] + h) / pix - 0.5,
                                                (pos[:, 0] + h) / pix - 0.5],
                                       order=1, mode="nearest")     # counts / arcsec^2
    ok = (det_like >= config.det_like_min) & (expo_v > 0)
    out = {"x": pos[:, 0], "y": pos[:, 1], "DET_LIKE": det_like, "EXT_LIKE": ext_like,
           "EXT_FIT": ext_fit, "ML_CTS": cts,
           "ML_CTS_ERR": cts_err, "ML_EXP": expo_v, "ML_BKG": bkg_dens * 3600.0,
           "DET_LIKE_PNT": dl_pt, "DET_LIKE_EXT": dl_ex, "SCALE": cs.astype(int),
           "OFFSET_PNT_EXT": np.hypot(*(p_pt - p_ex).T)}
    out["EXT"] = np.minimum(np.where(is_ext, f["ext"], 0.0), config.ext_report_max)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ML_RATE"] = np.where(expo_v > 0, cts / expo_v, 0.0)
        out["ML_RATE_ERR"] = np.where(expo_v > 0, cts_err / expo_v, 0.0)
    return {k: v[ok] for k, v in out.items()}


def _split_blends(fits, f, ptree, x, y, bd_img, h, config):
    """Stage 4b: extended candidates better fitted by two point sources become point-like
    (`astro_clustermass.simulate.blends`); returns the fits with their extended model
    dropped."""
    from .blends import two_point_preferred

    is_ext = f["ll_e"] > f["ll_pt"]
    ext_like = np.where(is_ext, ext_like_from_dc(2 * (f["ll_e"] - f["ll_pt"])), 0.0)
    test = np.flatnonzero(is_ext & (ext_like > config.det_two_point_min_ext_like)
                          & (fits.ext_grid[f["kb"]] <= config.ext_report_max))
    if test.size == 0:
        return f
    _, p_ex = fits.positions(f)
    pix = config.pixel

    def bkg_density(p):
        return ndimage.map_coordinates(bd_img, [(p[:, 1] + h) / pix - 0.5,
                                                (p[:, 0] + h) / pix - 0.5], order=1, mode="nearest")

    cands = [(i, p_ex[i], f["s_e"][i], fits.a_tot[1:][f["kb"][i]], fits.rank[i])
             for i in test]
    split = two_point_preferred(cands, ptree, x, y, bkg_density,
                                fits.final_models + (fits.rank,),
                                fits.rc_psf, radius=config.det_two_point_radius,
                                dlnl=config.det_two_point_dlnl or None)
    if not split.any():
        return f
    f = dict(f)
    for key in ("ll_e", "ll_c"):
        f[key] = f[key].copy()
        f[key][test[split]] = -1e30          # the extended model is not an option any more
    return f


def detect_patch(x, y, half_size, exposure_fn, config, vignetting, core=None, roi=None):
    """Detect sources in one square patch.

    Parameters
    ----------
    x, y : arrays
        Photon positions [arcsec] in the patch's tangent plane (x towards +RA).
    half_size : float
        Half side of the patch [arcsec]; photons outside are ignored.
    exposure_fn : callable
        ``exposure_fn(x, y) -> unvignetted exposure [s]`` at tangent-plane positions.
    config : SimConfig
    vignetting : float
        Survey-averaged vignetting of the band (vignetted / unvignetted exposure).
    core : callable, optional
        ``core(x, y) -> bool``: keep only detections for which it is true.
    roi : callable, optional
        ``roi(x, y) -> bool``: report only detections for which it is true (stamps).
        Applied like ``core``, after the clean-up: every candidate of the patch is
        fitted in every pass, so a detection inside ``roi`` is exactly the one the
        whole patch would give. (An earlier shortcut refitted only candidates inside
        ``roi`` and kept the others' isolated, neighbour-blind fits as their models,
        which absorbed the photons of the reported sources: the stamps lost about
        half of their detections.)

    Returns
    -------
    dict of arrays (one entry per detection): x, y [arcsec], DET_LIKE, EXT_LIKE, EXT
    [arcsec], ML_CTS, ML_CTS_ERR, ML_RATE, ML_RATE_ERR [ct/s], ML_EXP [s], ML_BKG
    [ct/arcmin^2], DET_LIKE_PNT, DET_LIKE_EXT (both model likelihoods), SCALE (candidate
    smoothing scale index).
    """
    from scipy.spatial import cKDTree

    x, y, img, cen, h, expo = _patch_image(x, y, half_size, exposure_fn, config.pixel)
    if x.size == 0:
        return _empty()
    smoothed = {float(sg): _smooth(img, sg) for sg in config.det_scales}
    bkg = _background_map(img, expo, config, smoothed)
    cpos, cs = _candidates(smoothed, bkg, expo, cen, config)
    if len(cpos) == 0:
        return _empty()
    ptree = cKDTree(np.column_stack([x, y]))
    bd_img = bkg / config.pixel ** 2
    pos_pt, pos_ext = _refine_positions(cpos, cs, ptree, x, y, bd_img, h, config)
    fits = _SourceFits(pos_pt, pos_ext, ptree, bd_img, h, config)
    f = fits.run(config)
    if config.det_two_point:
        f = _split_blends(fits, f, ptree, x, y, bd_img, h, config)
    cat = _catalogue(fits, f, cs, exposure_fn, vignetting, bd_img, h, config)
    cat["BOX_LIKE"] = _at_pixels(_box_like_map(smoothed, bkg, config), cat["x"], cat["y"], h,
                                 config.pixel)
    out = _dedupe(cat)
    if config.det_box_like_min > 0:
        # reported only with a point-like peak, as eSASS fits only erbox's candidates
        ok = out["BOX_LIKE"] >= config.det_box_like_min
        out = {k: v[ok] for k, v in out.items()}
    for keep in (core, roi):
        if keep is not None and len(out["x"]):
            inside = np.asarray(keep(out["x"], out["y"]), bool)
            out = {k: v[inside] for k, v in out.items()}
    return out


def _dedupe(det, bkg_dens=None):
    """Drop duplicates: see module docstring (clean-up)."""
    n = len(det["x"])
    if n < 2:
        return det
    # radius out to which an extended source outshines the background
    s = det["ML_CTS"]
    ext_fit = np.asarray(det.get("EXT_FIT", det["EXT"]), float)    # extent before the cap
    a = np.maximum(ext_fit, 1.0) + 8.08
    b = np.maximum(det["ML_BKG"] / 3600.0, 1e-6)
    peak = s / (2 * np.pi * a ** 2 * b)
    r_bright = np.where((ext_fit > 0) & (peak > 1),
                        a * np.sqrt(np.maximum(peak, 1) ** (2 / 3) - 1), 0)
    r_merge = np.where(ext_fit > 0, np.maximum(np.maximum(2.0 * ext_fit, 40.0), r_bright), 15.0)
    order = np.argsort(-det["DET_LIKE"])
    x, y = (np.asarray(det[c], float) for c in ("x", "y"))
    ext = ext_fit
    keep = np.empty(n, int)
    m = 0
    for i in order:
        # against every source kept so far (vectorised)
        kk = keep[:m]
        d = np.hypot(x[i] - x[kk], y[i] - y[kk])
        bad = d < 15.0
        if ext[i] > 0:
            bad |= (ext[kk] > 0) & (d < np.maximum(r_merge[kk], 1.5 * ext[i]))
        if not bad.any():
            keep[m] = i
            m += 1
    keep = np.sort(keep[:m])
    return {k: v[keep] for k, v in det.items()}


def _empty():
    names = ["x", "y", "DET_LIKE", "EXT_LIKE", "EXT", "EXT_FIT", "ML_CTS", "ML_CTS_ERR", "ML_EXP",
             "ML_BKG", "DET_LIKE_PNT", "DET_LIKE_EXT", "ML_RATE", "ML_RATE_ERR", "BOX_LIKE"]
    out = {k: np.zeros(0) for k in names}
    out["SCALE"] = np.zeros(0, int)
    out["OFFSET_PNT_EXT"] = np.zeros(0)
    return out
