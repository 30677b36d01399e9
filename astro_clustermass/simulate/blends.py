"""Two point sources instead of one extended source: the detection's answer to AGN blends.

eSASS ``ermldet`` (run for eFEDS with ``nmulsou = 2``, Brunner et al. 2022) may split a
source into two point sources before it judges the source's extent, so two AGN 20-60"
apart are fitted as two point sources rather than as one extended one. The simulator's
fits are radial (one centre per model, `astro_clustermass.simulate.mlfit`), so a blend of
two AGN is often fitted better by a PSF-convolved beta model than by one PSF, and passes
the cluster selection as an "extended" source.

`two_point_preferred` gives every extended candidate the alternative: on its photons
within ``radius`` (90") of the extended position, the unbinned Poisson likelihood of

- the extended model (King profile of core ``r_c(PSF) + f EXT``, f the best of 1, 1.5,
  2.25, 3.4) with a point-like core at the same position (a cool core): position and both
  counts free
- two point sources (two PSFs, both positions and counts free; 1 parameter more)

each over the same background: the background map's density plus the final models of
the other candidates that its own fit had in its background (brighter ones and point-like
ones). Both are maximised by expectation-maximisation
(the position update is the fixed point of d lnL / d x0 = 0 for a King profile, as in the
detection's `_ml_position`). Two point sources are preferred when they raise ln L by more
than ln(N) / 2, N the photons in the fit (the Bayesian information criterion's price of
the extra parameter, Schwarz 1978). Without the point-like core in the extended
hypothesis, cool-core clusters (a bright core in extended emission) were split too.
Synthetic checks (flat eFEDS background; ``tests/test_simulate_blends.py``): of 12 blends
of two 60-count AGN 35" apart, 9 passed the cluster selection without the alternative and
1 with it; all 12 clusters of 120 counts and core 10-40" passed with and without it; of
10 cool-core clusters (300 counts, 40 % in the core), all stayed one extended source
(3 were split before the core was added to the extended hypothesis). The candidate is then
reported as a point source (EXT = EXT_LIKE = 0). The second point source of
the pair is not added to the catalogue: it is point-like, so it never enters the cluster
selection.
"""

from __future__ import annotations

import numpy as np

__all__ = ["two_point_preferred"]


def _king_density(r2, a):
    """Normalised King (beta = 1.5) surface density [1/arcsec^2] at squared radius r2."""
    return (1.0 + r2 / a ** 2) ** -1.5 / (2.0 * np.pi * a ** 2)


def _fraction_within(radius, d, a):
    """Fraction of a King source (core ``a``) at distance ``d`` from the centre that falls
    within ``radius`` of the centre (the detection's tabulated offset integral)."""
    from .mlfit import _king_offset_table

    lx, ly, tab = _king_offset_table()
    qx = np.clip(np.log(radius / a), lx[0], lx[-1])
    qy = np.clip(np.log(np.maximum(d, 1e-3) / a), ly[0], ly[-1])
    fx = (qx - lx[0]) / (lx[1] - lx[0])
    fy = (qy - ly[0]) / (ly[1] - ly[0])
    ix = np.minimum(fx.astype(int), len(lx) - 2)
    iy = np.minimum(fy.astype(int), len(ly) - 2)
    wx, wy = fx - ix, fy - iy
    return ((1 - wy) * ((1 - wx) * tab[iy, ix] + wx * tab[iy, ix + 1])
            + wy * ((1 - wx) * tab[iy + 1, ix] + wx * tab[iy + 1, ix + 1]))


def _em_fit(xy, bdens, centre, radius, pos, counts, a, iters=25, tied=False):
    """EM fit of King components (cores ``a``, fixed) over a per-photon background density.

    ``tied``: all components share one position (an extended model with a point-like
    core). Returns (ln L up to a model-independent constant, positions, counts).
    """
    pos = np.array(pos, float)
    counts = np.array(counts, float)
    for _ in range(iters):
        d2 = ((xy[None, :, :] - pos[:, None, :]) ** 2).sum(-1)           # (k, n)
        lam = counts[:, None] * _king_density(d2, a[:, None])
        tot = lam.sum(0) + bdens
        w = lam / tot
        frac = _fraction_within(radius, np.hypot(*(pos - centre).T), a)
        counts = np.maximum(w.sum(1) / np.maximum(frac, 1e-3), 1e-3)
        g = w / (a[:, None] ** 2 + d2)
        if tied:
            g = np.broadcast_to(g.sum(0), g.shape)
        sw = g.sum(1)
        ok = sw > 0
        pos[ok] = (g[ok] @ xy) / sw[ok, None]
    d2 = ((xy[None, :, :] - pos[:, None, :]) ** 2).sum(-1)
    lam = counts[:, None] * _king_density(d2, a[:, None])
    frac = _fraction_within(radius, np.hypot(*(pos - centre).T), a)
    lnl = np.log(lam.sum(0) + bdens).sum() - (counts * frac).sum()
    return lnl, pos, counts


def _elongation_start(xy, bdens, centre, a_ext, counts, taper=30.0):
    """Two starting positions along the major axis of the source photons' distribution."""
    d2 = ((xy - centre) ** 2).sum(1)
    lam = counts * _king_density(d2, a_ext)
    w = lam / (lam + bdens) * np.exp(-0.5 * d2 / taper ** 2)
    if w.sum() <= 0:
        return None
    dx = xy - centre
    cov = (w[:, None, None] * dx[:, :, None] * dx[:, None, :]).sum(0) / w.sum()
    val, vec = np.linalg.eigh(cov)
    half = np.sqrt(max(val[1] - val[0], 25.0))
    return np.array([centre + half * vec[:, 1], centre - half * vec[:, 1]])


def two_point_preferred(cands, ptree, px, py, bkg_density, models, rc_psf, radius=90.0,
                        dlnl=None):
    """Which extended candidates are better fitted by two point sources (module docstring).

    Parameters
    ----------
    cands : list of (index, position (2,), counts, King core [arcsec], rank)
        The extended candidates to test, with their extended fits and brightness rank.
    ptree : cKDTree of the photon positions ``px``, ``py`` [arcsec]
    bkg_density : callable
        ``bkg_density(xy) -> counts / arcsec^2`` of the background map at positions (n, 2).
    models : tuple (positions (m, 2), counts (m,), King cores (m,), ranks (m,))
        Final models of all candidates; as in the fits, a candidate's background has the
        models of the brighter ones and of the point-like ones, not of weaker extended
        ones, and not its own (models within 15" of the tested position are skipped).
    rc_psf : float
        PSF King core [arcsec].
    radius : float
        Fit radius [arcsec].
    dlnl : float, optional
        The ln L gain two point sources need; default: ln N (N photons within
        ``radius``), the Bayesian information criterion's price of two more parameters.

    Returns
    -------
    array of bool, one per entry of ``cands``
    """
    from scipy.spatial import cKDTree

    mpos, ms, ma, mrank = models
    use = ms > 0
    mtree = cKDTree(mpos[use]) if use.any() else None
    mpos, ms, ma, mrank = mpos[use], ms[use], ma[use], mrank[use]
    m_ext = ma > rc_psf * 1.001
    out = np.zeros(len(cands), bool)
    a2 = np.array([rc_psf, rc_psf])
    for k, (_, pos, s_ext, a_ext, rank) in enumerate(cands):
        pos = np.asarray(pos, float)
        idx = ptree.query_ball_point(pos, radius)
        if len(idx) < 5:
            continue
        xy = np.column_stack([px[idx], py[idx]])
        bd = np.full(len(idx), float(bkg_density(pos[None, :])[0]))
        if mtree is not None:
            for j in mtree.query_ball_point(pos, radius + 300.0):
                # as in the fits: weaker extended neighbours are not subtracted
                if np.hypot(*(mpos[j] - pos)) > 15.0 and (mrank[j] < rank or not m_ext[j]):
                    bd += ms[j] * _king_density(((xy - mpos[j]) ** 2).sum(1), ma[j])
        start = _elongation_start(xy, bd, pos, a_ext, s_ext)
        if start is None:
            continue
        # the extended model with a point-like core at its centre (a cool core), so that
        # a cool-core cluster is not mistaken for two point sources
        # (its extent free again: next to a core the extended component is wider than the
        # single beta model's)
        ln_ext = max(_em_fit(xy, bd, pos, radius, np.array([pos, pos]), [0.7 * s_ext, 0.3 * s_ext],
                             np.array([rc_psf + f * (a_ext - rc_psf), rc_psf]), tied=True)[0]
                     for f in (1.0, 1.5, 2.25, 3.4))
        ln_two, p2, s2 = _em_fit(xy, bd, pos, radius, start, [0.5 * s_ext] * 2, a2)
        # Bayesian information criterion (Schwarz 1978): 1 more parameter costs ln(N) / 2
        out[k] = ln_two - ln_ext > (dlnl if dlnl is not None else 0.5 * np.log(len(idx)))
    return out
