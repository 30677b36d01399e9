"""Maximum-likelihood fits of the detection's candidates (`astro_clustermass.simulate.detect`, 3).

Photons within ``det_fit_radius`` of each candidate are counted in annuli; the background
per annulus comes from the background map, plus the current models of the neighbouring
candidates (King profiles, their share of each annulus from a tabulated offset integral).
Three models are fitted by maximising the Poisson likelihood in the source counts:
background only, background + PSF, background + PSF-convolved beta = 2/3 model on the
core-radius grid ``ext_grid``. `_SourceFits.run` does the isolated fit, the two
neighbour passes and the third pass for extended candidates next to a stronger point
source (see the module docstring of `astro_clustermass.simulate.detect`).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

__all__ = ["annulus_edges"]


def annulus_edges(rmax):
    """Radial bin edges [arcsec]: 4" steps to 60", then logarithmic to ``rmax``."""
    inner = np.arange(0.0, 60.0 + 1e-9, 4.0)
    outer = np.geomspace(60.0, rmax, 16)[1:]
    return np.concatenate([inner, outer])


def _pairs(tree_a, pts_b_tree, r):
    """(i, j, d) for all pairs of points of tree_a and tree_b closer than r."""
    m = tree_a.sparse_distance_matrix(pts_b_tree, r, output_type="coo_matrix")
    return m.row, m.col, m.data


def _fit_counts(n, b, f, iters=30, tol=1e-5):
    """Maximise sum n ln(b + S f) - (b + S f) over S >= 0, vectorised.

    n, b : (..., nbins); f : (..., nbins) source template (fraction of total counts per bin).
    Newton steps (halving S where a step would make it negative), per row until the step
    is below ``tol`` (1 + S) or ``iters`` steps.
    Returns S, lnL(S) - lnL(0), curvature (Fisher information at S).
    """
    fsum = f.sum(-1)
    s = np.maximum((n - b).sum(-1) / np.maximum(fsum, 1e-12), 0.0)
    # Newton iterations only on the rows that have not converged yet (each row stops on
    # its own step, so a fit does not depend on which other rows share the call)
    shp = s.shape
    s = s.reshape(-1).copy()
    n2 = np.broadcast_to(n, shp + n.shape[-1:]).reshape(-1, n.shape[-1])
    b2 = np.broadcast_to(b, shp + b.shape[-1:]).reshape(-1, b.shape[-1])
    f2 = np.broadcast_to(f, shp + f.shape[-1:]).reshape(-1, f.shape[-1])
    fs2 = np.broadcast_to(fsum, shp).reshape(-1)
    act = np.arange(s.size)
    for _ in range(iters):
        if act.size == 0:
            break
        fa = f2[act]
        na = n2[act]
        sa = s[act]
        mu = np.maximum(b2[act] + sa[:, None] * fa, 1e-12)
        q = na * fa / mu
        g = q.sum(-1) - fs2[act]
        h = (q * fa / mu).sum(-1)
        s_new = sa + g / np.maximum(h, 1e-12)
        s_new = np.where(s_new < 0, 0.5 * sa, s_new)
        s[act] = s_new
        act = act[np.abs(s_new - sa) >= tol * (1.0 + sa)]
    s = s.reshape(shp)
    mu = np.maximum(b + s[..., None] * f, 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = (np.where(n > 0, n * np.log(mu / np.maximum(b, 1e-12)), 0.0)
              - s[..., None] * f).sum(-1)
    fisher = (n * f ** 2 / mu ** 2).sum(-1)
    # expected information is more stable for few counts
    fisher_exp = (f ** 2 / mu).sum(-1)
    return s, ll, np.maximum(fisher, fisher_exp)


def _annulus_background(bkg_dens_img, pix, h, pos, redges, nang=12):
    """Background counts per annulus: background map averaged over each annulus."""
    n = len(pos)
    rmid = np.concatenate([0.25 * redges[1:2], 0.5 * (redges[1:-1] + redges[2:])])
    ang = (np.arange(nang) + 0.5) * 2 * np.pi / nang
    xs = pos[:, 0][:, None, None] + rmid[None, :, None] * np.cos(ang)[None, None, :]
    ys = pos[:, 1][:, None, None] + rmid[None, :, None] * np.sin(ang)[None, None, :]
    val = ndimage.map_coordinates(bkg_dens_img, [((ys + h) / pix - 0.5).ravel(),
                                                 ((xs + h) / pix - 0.5).ravel()],
                                  order=1, mode="constant", cval=0.0)
    dens = val.reshape(n, len(rmid), nang).mean(-1)
    area = np.pi * (redges[1:] ** 2 - redges[:-1] ** 2)
    return dens * area[None, :]


def _radial_counts(pos, ptree, redges):
    """Photon counts in annuli (redges) around each position: (n, nb)."""
    from scipy.spatial import cKDTree

    n = len(pos)
    nb = len(redges) - 1
    i, _j, d = _pairs(cKDTree(pos), ptree, redges[-1])
    b = np.searchsorted(redges, d, side="right") - 1
    ok = (b >= 0) & (b < nb)
    return np.bincount(i[ok] * nb + b[ok], minlength=n * nb).reshape(n, nb).astype(float)


@functools.lru_cache(maxsize=1)
def _king_offset_table(nq=512, n=240):
    """F(r/a, d/a): fraction of a King (beta = 1.5, core a) source at distance d that falls
    within radius r of a point; tabulated on log grids (average over ``nq`` equal-probability
    source radii of the share of each circle inside the disk)."""
    uq = (np.arange(nq) + 0.5) / nq
    rho = np.sqrt((1.0 - uq) ** -2 - 1.0)
    lx = np.linspace(np.log(1e-2), np.log(2e3), n)
    ly = np.linspace(np.log(1e-2), np.log(2e3), n)
    r = np.exp(lx)
    tab = np.empty((n, n))
    for j, dv in enumerate(np.exp(ly)):
        cosv = (rho[None, :] ** 2 + dv ** 2 - r[:, None] ** 2) / (2 * rho[None, :] * dv)
        tab[j] = (np.arccos(np.clip(cosv, -1, 1)) / np.pi).mean(1)
    return lx, ly, tab


def _neighbour_model(pos, src_pos, src_s, src_a, redges, exclude_self=True, allowed=None,
                     max_dist=None):
    """Counts expected in the annuli around ``pos`` from King-profile sources.

    ``src_s`` total counts, ``src_a`` King core radii (beta = 1.5) of the sources at
    ``src_pos``; pairs closer than 15" (the same source) are skipped; ``allowed(i, k)``
    (boolean array over pairs) restricts which sources count for which position.
    The fraction of a source's counts within radius r of a position at distance d is
    the average, over 64 equal-probability radii rho of the King profile, of the share
    of the circle of radius rho about the source that lies within r of the position.
    """
    from scipy.spatial import cKDTree

    n = len(pos)
    nb = len(redges) - 1
    out = np.zeros((n, nb))
    use = src_s > 0
    if not use.any() or n == 0:
        return out
    kidx = np.flatnonzero(use)
    rmax = max_dist or (redges[-1] + 150.0)
    i, k, d = _pairs(cKDTree(pos), cKDTree(src_pos[kidx]), rmax)
    k = kidx[k]
    ok = d > 15.0
    if allowed is not None:
        ok &= allowed(i, k)
    i, k, d = i[ok], k[ok], d[ok]
    if i.size == 0:
        return out
    lx, ly, tab = _king_offset_table()
    a = src_a[k]
    qy = np.clip(np.log(d / a), ly[0], ly[-1])
    fy = (qy - ly[0]) / (ly[1] - ly[0])
    iy = np.minimum(fy.astype(int), len(ly) - 2)
    wy = (fy - iy)[:, None]
    # the source cores take few distinct values (PSF + the EXT grid): interpolate the
    # table along r/a once per value, then only along d/a per pair. The annulus shares
    # (differences along r) are non-negative on every table row, so interpolating the
    # differences equals differencing the interpolated cumulative fractions.
    ua, inv = np.unique(a, return_inverse=True)
    with np.errstate(divide="ignore"):
        qx = np.log(redges[None, :] / ua[:, None])
    qx = np.clip(qx, lx[0], lx[-1])
    fx = (qx - lx[0]) / (lx[1] - lx[0])
    ix = np.minimum(fx.astype(int), len(lx) - 2)
    wx = fx - ix
    cum_a = (1 - wx)[:, None, :] * tab[:, ix].transpose(1, 0, 2) \
        + wx[:, None, :] * tab[:, ix + 1].transpose(1, 0, 2)          # (nua, ny, nedge)
    cum_a[:, :, 0] = 0.0
    dif_a = np.maximum(np.diff(cum_a, axis=2), 0.0)                   # (nua, ny, nb)
    contrib = (1 - wy) * dif_a[inv, iy] + wy * dif_a[inv, iy + 1]
    contrib *= src_s[k][:, None]
    for col in range(nb):
        out[:, col] = np.bincount(i, contrib[:, col], minlength=n)
    return out


class _SourceFits:
    """Stage 4: the likelihood fits of every candidate (see the module docstring, step 3).

    Holds the radial counts and background of each candidate at its two positions and the
    model templates (point: the PSF; extended: the PSF-convolved beta = 2/3 model on the
    core-radius grid ``ext_grid``); `fit` fits them all with given neighbour models added
    to the background, `models` turns a fit into the sources' current models, and
    `neighbour_fit` refits every candidate with the others' models.
    """

    def __init__(self, pos_pt, pos_ext, ptree, bd_img, h, config):
        self.pos_pt, self.pos_ext = pos_pt, pos_ext
        self.rc_psf = config.psf_rc
        self.redges = annulus_edges(config.det_fit_radius)
        self.ext_grid = np.geomspace(config.ext_grid[0], config.ext_grid[1],
                                     int(config.ext_grid[2]))
        self.a_tot = np.concatenate([[self.rc_psf], self.rc_psf + self.ext_grid])  # King cores
        eef = 1.0 - (1.0 + (self.redges[None, :] / self.a_tot[:, None]) ** 2) ** -0.5
        self.tmpl = np.diff(eef, axis=1)                                  # (nmodel, nb)
        self.n_pt = _radial_counts(pos_pt, ptree, self.redges)
        self.n_ex = _radial_counts(pos_ext, ptree, self.redges)
        self.b_pt0 = _annulus_background(bd_img, config.pixel, h, pos_pt, self.redges)
        self.b_ex0 = _annulus_background(bd_img, config.pixel, h, pos_ext, self.redges)
        self.n = len(pos_pt)
        self.rank = None
        self.model_min_dlnl = config.det_model_min_dlnl
        self.n_capped = int(np.sum(self.ext_grid <= config.ext_report_max * 1.001))

    def fit(self, extra_pt, extra_ex):
        """Every model at both positions; each family keeps its better position."""
        shape = (self.n,) + self.tmpl.shape
        r = np.arange(self.n)
        res = []
        for n_, b_ in ((self.n_pt, self.b_pt0 + extra_pt), (self.n_ex, self.b_ex0 + extra_ex)):
            res.append(_fit_counts(np.broadcast_to(n_[:, None, :], shape),
                                   np.broadcast_to(b_[:, None, :], shape),
                                   np.broadcast_to(self.tmpl[None], shape)))
        (s_a, ll_a, fi_a), (s_b, ll_b, fi_b) = res
        use_b_pt = ll_b[:, 0] > ll_a[:, 0]
        kb_a = np.argmax(ll_a[:, 1:], axis=1)
        kb_b = np.argmax(ll_b[:, 1:], axis=1)
        use_b_ex = ll_b[r, 1 + kb_b] >= ll_a[r, 1 + kb_a]
        kb = np.where(use_b_ex, kb_b, kb_a)
        ll_ext = np.where(use_b_ex[:, None], ll_b[:, 1:], ll_a[:, 1:])
        ext = self.refine_extent(ll_ext, kb)
        # the best model with EXT <= ext_report_max at the same position: what ermldet,
        # whose extent stops there (extmax), would report
        kc = np.argmax(ll_ext[:, :self.n_capped], axis=1)
        s_ext = np.where(use_b_ex[:, None], s_b[:, 1:], s_a[:, 1:])
        fi_ext = np.where(use_b_ex[:, None], fi_b[:, 1:], fi_a[:, 1:])
        capped = dict(ll_c=ll_ext[r, kc], s_c=s_ext[r, kc], fi_c=fi_ext[r, kc],
                      ext_c=self.refine_extent(ll_ext[:, :self.n_capped], kc,
                                               self.ext_grid[:self.n_capped]))

        def pick(arr_a, arr_b, k, useb):
            return np.where(useb, arr_b[r, k], arr_a[r, k])

        return dict(s_pt=pick(s_a, s_b, 0, use_b_pt), ll_pt=pick(ll_a, ll_b, 0, use_b_pt),
                    fi_pt=pick(fi_a, fi_b, 0, use_b_pt), pt_at_ext=use_b_pt,
                    s_e=np.where(use_b_ex, s_b[r, 1 + kb_b], s_a[r, 1 + kb_a]),
                    ll_e=np.where(use_b_ex, ll_b[r, 1 + kb_b], ll_a[r, 1 + kb_a]),
                    fi_e=np.where(use_b_ex, fi_b[r, 1 + kb_b], fi_a[r, 1 + kb_a]),
                    ext_at_ext=use_b_ex, kb=kb, ext=ext, **capped)

    def refine_extent(self, ll, kb, grid=None):
        """Core radius [arcsec] between the grid values: the maximum of a parabola in
        ln(EXT) through the likelihoods at the best grid value ``kb`` and its two
        neighbours (eSASS fits the extent continuously); the grid value at its ends.
        ``grid``: the core radii of the columns of ``ll`` (default: ``ext_grid``)."""
        grid = self.ext_grid if grid is None else grid
        lg = np.log(grid)
        n = lg.size
        r = np.arange(len(kb))
        k = np.clip(kb, 1, n - 2)
        y0, y1, y2 = ll[r, k - 1], ll[r, k], ll[r, k + 1]
        den = y0 - 2.0 * y1 + y2
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(den < 0, 0.5 * (y0 - y2) / den, 0.0)
        d = np.clip(np.nan_to_num(d), -0.5, 0.5)
        inner = (kb > 0) & (kb < n - 1)
        return np.where(inner, np.exp(lg[k] + d * (lg[1] - lg[0])), grid[kb])

    def positions(self, f):
        """Positions of the point and of the extended model of each candidate in fit ``f``."""
        p_pt = np.where(f["pt_at_ext"][:, None], self.pos_ext, self.pos_pt)
        p_ex = np.where(f["ext_at_ext"][:, None], self.pos_ext, self.pos_pt)
        return p_pt, p_ex

    def models(self, f):
        """(position, counts, King core, likelihood) of each candidate's better model."""
        is_ext = f["ll_e"] > f["ll_pt"]
        s = np.where(is_ext, f["s_e"], f["s_pt"])
        a = np.where(is_ext, self.a_tot[1:][f["kb"]], self.rc_psf)
        p_pt, p_ex = self.positions(f)
        p = np.where(is_ext[:, None], p_ex, p_pt)
        like = np.maximum(f["ll_pt"], f["ll_e"])
        s = np.where(like > self.model_min_dlnl, s, 0.0)   # only sources the catalogue keeps
        return p, s, a, like

    def isolated(self):
        """Pass 0: isolated fits; the ranking by likelihood is kept for `neighbour_fit`."""
        zero = np.zeros_like(self.n_pt)
        f = self.fit(zero, zero)
        self.rank = np.empty(self.n, int)
        self.rank[np.argsort(-np.maximum(f["ll_pt"], f["ll_e"]))] = np.arange(self.n)
        return f

    def neighbour_fit(self, p, s, a):
        """Every candidate fitted with the models (p, s, a) of the others added to its
        background."""
        ext = a > self.rc_psf * 1.001
        rank = self.rank

        def allowed(i, k):
            # weaker extended neighbours are not subtracted: near a stronger source
            # they are mostly its fragments (outskirts, substructure)
            return (rank[k] < rank[i]) | ~ext[k]

        return self.fit(_neighbour_model(self.pos_pt, p, s, a, self.redges, allowed=allowed),
                        _neighbour_model(self.pos_ext, p, s, a, self.redges, allowed=allowed))

    def run(self, config):
        """The isolated fit, two neighbour passes, and the third pass for the extended
        candidates next to a stronger point-like one (module docstring, step 3)."""
        f = self.isolated()
        # neighbours start as point sources (as eSASS starts from the point-like
        # box-detection list); every candidate is refitted in both passes, also with
        # ``roi``: a neighbour left at its isolated fit (which takes in the photons of
        # everything around it, often as a wide extended model) would absorb the photons
        # of the sources it surrounds
        p_cur, _ = self.positions(f)
        s_cur = np.where(f["ll_pt"] > self.model_min_dlnl, f["s_pt"], 0.0)
        a_cur = np.full(self.n, self.rc_psf)
        for _pass in range(2):
            f = self.neighbour_fit(p_cur, s_cur, a_cur)
            p_cur, s_cur, a_cur, like_cur = self.models(f)
        redo = _extended_near_stronger_point(p_cur, s_cur, a_cur, like_cur, self.rc_psf,
                                             config.det_ext_refit_radius)
        if redo.any():
            f3 = self.neighbour_fit(p_cur, s_cur, a_cur)
            f = {key: np.where(redo.reshape((-1,) + (1,) * (np.ndim(v) - 1)), f3[key], v)
                 for key, v in f.items()}
        self.final_models = (p_cur, s_cur, a_cur)
        return f


def _extended_near_stronger_point(p, s, a, like, rc_psf, radius):
    """Which candidates get the third neighbour pass: the extended ones (core radius
    ``a`` above the PSF's) with a stronger (``like``) point-like one within ``radius``
    [arcsec]. Their fits are redone with every neighbour's second-pass model; all other
    candidates keep their second-pass fits.

    Why: in the first pass a bright point source is fitted with the isolated models of
    the candidates around it subtracted, and those took many of its photons, so its
    model is too faint; in the second pass the candidates around it are fitted against
    that too-faint model and take its residual wings as extended emission ("ghosts").
    Its second-pass model is about right, and fitting the extended candidates near it
    once more against it removes most ghosts. Refitting *every* candidate again instead
    continues the oscillation (four passes gave more extended AGN than two).
    """
    from scipy.spatial import cKDTree

    redo = np.zeros(len(a), bool)
    ext = a > rc_psf * 1.001
    pt = ~ext & (s > 0)
    if radius <= 0 or not ext.any() or not pt.any():
        return redo
    i, k, _ = _pairs(cKDTree(p), cKDTree(p[pt]), radius)
    k = np.flatnonzero(pt)[k]
    near = ext[i] & (like[k] > like[i])
    redo[i[near]] = True
    return redo
