"""What the CNN ensemble looks at: member disagreement, gradient maps, core masking.

Works with a loaded `astro_clustermass.cnn.ensemble.Ensemble` (``Ensemble.load(dir)``,
or `load_ensemble`). torch is imported inside the functions that need it only, so
importing this module stays light.

- `member_disagreement`: per cluster the ensemble mean and sigma (seed 000 Eqs. 2-3),
  the range of the member means Delta mu = mu_max - mu_min (seed 000 Fig. 7) and the
  member sigmas relative to the ensemble sigma (seed 000: <sigma/sigma_*> = 0.951 +- 0.039);
  `disagreement_figure` shows the ten band images of the clusters with the largest and
  smallest Delta mu.
- `gradient_maps`: d(ensemble mean log10 M)/d(counts) for every pixel and band, by
  automatic differentiation through the input normalisation and every member, averaged
  over the clusters of each bin of true mass (the signed mean, the mean absolute value
  and gradient x input), plus radial profiles. This is the first step of seed 004's
  DeepDream analysis (the gradient that, added to the image, raises the predicted mass).
- `core_masking_test`: seed 004 found that its CNN ignores the cluster core (R < 0.2
  R500c). Here the central pixels of every band are replaced by the image's local
  background level and the scatter against the true masses is compared with the
  unmasked images and with a control: an equal disc masked away from the centre.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.table import QTable

__all__ = ["load_ensemble", "member_disagreement", "extreme_disagreement",
           "disagreement_figure", "gradient_maps", "mask_disc", "background_level",
           "core_masking_test", "deepdream", "DEFAULT_CORE_RADIUS_PIX",
           "DEFAULT_BACKGROUND_INNER"]

#: Default radius of the masked core [pixels of the 50 x 50 EBI = 24" each]: 2 pixels
#: (48") is about the eFEDS PSF half-energy width (26-30") plus a pixel, and 0.1-0.3
#: R500c for the clusters of the eFEDS selection (R500c of 2-6 arcmin).
DEFAULT_CORE_RADIUS_PIX = 2.0
#: Pixels farther than this fraction of the half side from the centre define the local
#: background level of `background_level` (for 50 x 50 images: r > 20 pixels = 480").
DEFAULT_BACKGROUND_INNER = 0.8


def load_ensemble(weights=None, device="cpu"):
    """Load a CNN ensemble directory (default: the shipped one) as an ``Ensemble``."""
    from .ensemble import Ensemble
    from .io import default_weights_dir

    return Ensemble.load(weights or default_weights_dir(), device=device)


# -- ensemble diagnostics -------------------------------------------------------------
def member_disagreement(ensemble, ebi, z, batch_size=256, progress=False):
    """Ensemble prediction and member disagreement for every cluster.

    Parameters
    ----------
    ensemble : `astro_clustermass.cnn.ensemble.Ensemble`
        Anything with ``predict(ebi, z, batch_size=, progress=)`` returning
        ``(mean, sigma_star, mu, sigma)`` (member arrays of shape (M, N)) [dex].
    ebi : array (N, ny, nx, nbands)
        Energy-band images [counts per pixel].
    z : array (N,)

    Returns
    -------
    `~astropy.table.QTable`
        ``mean``, ``sigma_star`` (ensemble), ``mu_min``, ``mu_max``, ``member_range``
        (Delta mu), ``member_std`` [dex], ``sigma_ratio`` (mean over members of
        sigma_i / sigma_star), ``mu_members``, ``sigma_members`` (N, M) [dex]. ``meta``
        holds ``sigma_ratio_mean`` and ``sigma_ratio_std`` over all members and
        clusters (the seed's 0.951 +- 0.039).
    """
    mean, sstar, mu, sig = ensemble.predict(ebi, np.asarray(z, float),
                                            batch_size=batch_size, progress=progress)
    mu = np.asarray(mu, float)
    sig = np.asarray(sig, float)
    ratio = sig / np.asarray(sstar)[None, :]
    t = QTable()
    t["mean"] = np.asarray(mean) * u.dex
    t["sigma_star"] = np.asarray(sstar) * u.dex
    t["mu_min"] = mu.min(axis=0) * u.dex
    t["mu_max"] = mu.max(axis=0) * u.dex
    t["member_range"] = (mu.max(axis=0) - mu.min(axis=0)) * u.dex
    t["member_std"] = mu.std(axis=0) * u.dex
    t["sigma_ratio"] = ratio.mean(axis=0)
    t["mu_members"] = mu.T * u.dex
    t["sigma_members"] = sig.T * u.dex
    t.meta["n_members"] = int(mu.shape[0])
    t.meta["sigma_ratio_mean"] = float(np.mean(ratio)) if ratio.size else float("nan")
    t.meta["sigma_ratio_std"] = float(np.std(ratio)) if ratio.size else float("nan")
    t.meta["description"] = ("member_range = max - min of the member means (seed 000 Fig. 7); "
                             "sigma_ratio = mean_i sigma_i / sigma_star")
    return t


def extreme_disagreement(member_range, k=1):
    """Indices of the ``k`` clusters with the largest and the ``k`` with the smallest
    member disagreement (NaN ignored). Returns ``(largest, smallest)``."""
    r = np.asarray(getattr(member_range, "value", member_range), float)
    idx = np.flatnonzero(np.isfinite(r))
    order = idx[np.argsort(r[idx], kind="stable")]
    k = int(min(k, len(order)))
    return order[::-1][:k], order[:k]


def disagreement_figure(ebi, disagreement, log10_true=None, z=None, k=1,
                        band_edges_keV=None, pixel_arcsec=24.0, clip=None):
    """Ten band images of the clusters with the largest and smallest Delta mu (seed 000
    Fig. 7). ``disagreement`` is the table of `member_disagreement`."""
    from ..evaluation.plots import plot_band_images

    largest, smallest = extreme_disagreement(disagreement["member_range"], k)
    rows, titles = [], []
    for tag, idxs in (("largest", largest), ("smallest", smallest)):
        for i in idxs:
            d = disagreement[int(i)]
            text = (f"{tag} member disagreement: Δμ = {d['member_range'].value:.3f} dex "
                    f"(μ_min = {d['mu_min'].value:.3f}, μ_max = {d['mu_max'].value:.3f}); "
                    f"ensemble {d['mean'].value:.3f} ± {d['sigma_star'].value:.3f}")
            if log10_true is not None:
                text += f"; true {float(log10_true[int(i)]):.3f}"
            if z is not None:
                text += f"; z = {float(z[int(i)]):.3f}"
            rows.append(np.asarray(ebi[int(i)], float))
            titles.append(text)
    return plot_band_images(np.stack(rows), titles, band_edges_keV, pixel_arcsec, clip,
                            suptitle="Clusters with the largest and smallest disagreement "
                            "between ensemble members (all masses log10 M500c/Msun, dex)")


# -- gradients ------------------------------------------------------------------------
def _ensemble_mean_dex(ensemble, counts, z):
    """Ensemble mean log10 M [dex] as a differentiable function of the counts tensor
    (N, ny, nx, nb), following `~astro_clustermass.cnn.dataset.Normalisation.images`."""
    import torch

    norm = ensemble.normalisation
    if norm.image_transform != "log1p":
        raise ValueError(f"unsupported image transform {norm.image_transform!r}")
    x = torch.log1p(torch.clamp(counts, min=0.0)) / norm.image_scale
    x = x.permute(0, 3, 1, 2)
    zz = (z - norm.z_offset) / norm.z_scale
    mus = torch.stack([m(x, zz)[:, 0] for m in ensemble.models])
    return norm.y_offset + norm.y_scale * mus.mean(dim=0)


def gradient_maps(ensemble, ebi, z, log10_true, mass_bins=(13.0, 13.5, 14.0, 14.5, 15.0,
                                                          15.5),
                  batch_size=64, max_per_bin=None, r500_pix=None,
                  radial_edges=(0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0), seed=0,
                  progress=False):
    """Gradient of the ensemble's predicted log10 M500c w.r.t. the input counts,
    averaged over the clusters of each bin of true mass.

    Parameters
    ----------
    ensemble : `astro_clustermass.cnn.ensemble.Ensemble`
        Its ``models`` (members) and ``normalisation`` are used; members stay in eval mode.
    ebi : array (N, ny, nx, nbands)
        Energy-band images [counts per pixel].
    z, log10_true : arrays (N,)
        Redshift and true log10(M500c / Msun) (the latter only to bin).
    mass_bins : sequence of float
        Edges in log10 M [dex], bins [lo, hi).
    batch_size : int
    max_per_bin : int, optional
        Use at most this many clusters per bin (random, ``seed``), to bound the cost.
    r500_pix : array (N,), optional
        R500c of every cluster in image pixels: adds radial profiles in R / R500c.
    radial_edges : sequence of float
        Edges of those profiles [R / R500c].

    Returns
    -------
    dict
        ``bins`` (list of (lo, hi)), ``n`` (clusters per bin), ``mean_gradient``,
        ``mean_abs_gradient``, ``mean_grad_x_input`` (arrays (B, ny, nx, nbands) in dex
        per count, dex per count, dex), ``band_fraction`` ((B, nbands): share of the
        summed absolute gradient in each band), ``unit`` and, with ``r500_pix``,
        ``radial_edges`` and ``radial_profile`` ((B, len(edges) - 1): mean
        band-summed gradient per pixel in each R/R500c annulus, dex per count; averaged
        over the clusters that have a pixel centre in the annulus, NaN if none),
        ``radial_profile_x_input`` (the same for gradient x input, dex per pixel) and
        ``radial_n`` (clusters contributing to each annulus).
    """
    import torch

    ebi = np.asarray(ebi) if not hasattr(ebi, "shape") else ebi
    z = np.asarray(z, float)
    t = np.asarray(log10_true, float)
    edges = np.asarray(mass_bins, float)
    n, ny, nx, nb = ebi.shape
    rng = np.random.default_rng(seed)
    dtype = next(ensemble.models[0].parameters()).dtype
    device = next(ensemble.models[0].parameters()).device
    nbin = len(edges) - 1
    out = {key: np.zeros((nbin, ny, nx, nb)) for key in
           ("mean_gradient", "mean_abs_gradient", "mean_grad_x_input")}
    counts_per_bin = np.zeros(nbin, dtype=int)
    redges = np.asarray(radial_edges, float)
    prof = np.zeros((nbin, len(redges) - 1))
    profx = np.zeros((nbin, len(redges) - 1))
    prof_n = np.zeros((nbin, len(redges) - 1))  # clusters with pixels in each annulus
    yy, xx = np.indices((ny, nx))
    rpix = np.hypot(yy - (ny - 1) / 2, xx - (nx - 1) / 2)
    bins_iter = range(nbin)
    if progress:
        from tqdm.auto import tqdm

        bins_iter = tqdm(bins_iter, desc="gradient maps", unit="bin")
    for b in bins_iter:
        idx = np.flatnonzero((t >= edges[b]) & (t < edges[b + 1]) & np.isfinite(z))
        if max_per_bin is not None and len(idx) > max_per_bin:
            idx = np.sort(rng.choice(idx, int(max_per_bin), replace=False))
        counts_per_bin[b] = len(idx)
        for s in range(0, len(idx), batch_size):
            sel = idx[s:s + batch_size]
            cnt = torch.tensor(np.asarray(ebi[sel], dtype=float), dtype=dtype, device=device,
                               requires_grad=True)
            zz = torch.tensor(z[sel], dtype=dtype, device=device)
            mean = _ensemble_mean_dex(ensemble, cnt, zz)
            (grad,) = torch.autograd.grad(mean.sum(), cnt)
            g = grad.detach().cpu().numpy().astype(float)
            c = np.asarray(ebi[sel], dtype=float)
            out["mean_gradient"][b] += g.sum(axis=0)
            out["mean_abs_gradient"][b] += np.abs(g).sum(axis=0)
            out["mean_grad_x_input"][b] += (g * c).sum(axis=0)
            if r500_pix is not None:
                g2 = g.sum(axis=-1)
                gx2 = (g * c).sum(axis=-1)
                nr = len(redges) - 1
                for j, i in enumerate(sel):
                    rr = rpix / float(r500_pix[i])
                    k = np.digitize(rr.ravel(), redges) - 1
                    ok = (k >= 0) & (k < nr)
                    npx = np.bincount(k[ok], minlength=nr)
                    has = npx > 0  # annuli narrower than a pixel may hold none
                    den = np.maximum(npx, 1)
                    prof[b] += np.where(has, np.bincount(k[ok], weights=g2[j].ravel()[ok],
                                                         minlength=nr) / den, 0.0)
                    profx[b] += np.where(has, np.bincount(k[ok], weights=gx2[j].ravel()[ok],
                                                          minlength=nr) / den, 0.0)
                    prof_n[b] += has
        if counts_per_bin[b]:
            for key in out:
                out[key][b] /= counts_per_bin[b]
    with np.errstate(invalid="ignore", divide="ignore"):
        prof = np.where(prof_n > 0, prof / np.maximum(prof_n, 1), np.nan)
        profx = np.where(prof_n > 0, profx / np.maximum(prof_n, 1), np.nan)
    absband = out["mean_abs_gradient"].sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = absband / absband.sum(axis=1, keepdims=True)
    result = {"bins": [(float(a), float(c)) for a, c in zip(edges[:-1], edges[1:])],
              "n": counts_per_bin.tolist(), **out, "band_fraction": frac,
              "unit": "dex per count"}
    if r500_pix is not None:
        result["radial_edges"] = redges
        result["radial_profile"] = prof
        result["radial_profile_x_input"] = profx
        result["radial_n"] = prof_n.astype(int)
    return result


def deepdream(ensemble, ebi, z, r500_pix, n_iter=2, max_change=1.0, clip=36.0,
              radial_edges=(0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0), batch_size=64):
    """Seed 004's DeepDream-style iteration: add the gradient to the image, repeat.

    Every iteration adds ``eta * gradient`` of the ensemble mean log10 M to each image,
    with ``eta`` chosen per cluster so that the largest change of any pixel is
    ``max_change`` counts, then clips the counts to [0, ``clip``] (the physical
    constraint of seed 004; the EBIs are smoothed, so counts are not rounded). The
    fractional change of the counts, sum(Delta N) / sum(N) in annuli of R / R500c, says
    where the network adds photons to make a cluster look more massive (seed 004 Fig. 6).

    Parameters
    ----------
    ensemble : `astro_clustermass.cnn.ensemble.Ensemble`
    ebi : array (N, ny, nx, nbands); z : array (N,)
    r500_pix : array (N,)
        R500c of every cluster [EBI pixels].
    n_iter : int
    max_change : float
        Largest change of a pixel per iteration [counts].
    clip : float or None
        Upper limit of the counts (the EBI clipping, 36).

    Returns
    -------
    dict
        ``log10_mass`` (n_iter + 1, N): the ensemble mean after each iteration [dex];
        ``delta_over_n`` (n_iter, N, len(radial_edges) - 1): cumulative sum(Delta N) /
        sum(N) of the original image per annulus (NaN where an annulus holds no pixel or
        no counts); ``radial_edges``; ``images`` (N, ny, nx, nbands), the final images.
    """
    import torch

    x0 = np.asarray(ebi, dtype=float)
    n, ny, nx, nb = x0.shape
    z = np.asarray(z, float)
    r500 = np.broadcast_to(np.asarray(r500_pix, float), (n,))
    redges = np.asarray(radial_edges, float)
    nr = len(redges) - 1
    dtype = next(ensemble.models[0].parameters()).dtype
    device = next(ensemble.models[0].parameters()).device
    yy, xx = np.indices((ny, nx))
    rpix = np.hypot(yy - (ny - 1) / 2, xx - (nx - 1) / 2)
    x = x0.copy()
    masses = np.zeros((n_iter + 1, n))
    frac = np.full((n_iter, n, nr), np.nan)
    for it in range(n_iter + 1):
        for s in range(0, n, batch_size):
            cnt = torch.tensor(x[s:s + batch_size], dtype=dtype, device=device,
                               requires_grad=it < n_iter)
            zz = torch.tensor(z[s:s + batch_size], dtype=dtype, device=device)
            mean = _ensemble_mean_dex(ensemble, cnt, zz)
            masses[it, s:s + batch_size] = mean.detach().cpu().numpy()
            if it == n_iter:
                continue
            (g,) = torch.autograd.grad(mean.sum(), cnt)
            g = g.detach().cpu().numpy().astype(float)
            gmax = np.abs(g).reshape(len(g), -1).max(axis=1)
            eta = np.where(gmax > 0, max_change / np.where(gmax > 0, gmax, 1.0), 0.0)
            upd = x[s:s + batch_size] + eta[:, None, None, None] * g
            x[s:s + batch_size] = np.clip(upd, 0.0, clip if clip is not None else None)
        if it == n_iter:
            break
        dn = (x - x0).sum(axis=-1)
        n0 = x0.sum(axis=-1)
        for i in range(n):
            k = np.digitize((rpix / r500[i]).ravel(), redges) - 1
            ok = (k >= 0) & (k < nr)
            num = np.bincount(k[ok], weights=dn[i].ravel()[ok], minlength=nr)
            den = np.bincount(k[ok], weights=n0[i].ravel()[ok], minlength=nr)
            with np.errstate(invalid="ignore", divide="ignore"):
                frac[it, i] = np.where(den > 0, num / den, np.nan)
    return {"log10_mass": masses, "delta_over_n": frac, "radial_edges": redges,
            "images": x.astype(np.float32)}


# -- core masking ---------------------------------------------------------------------
def background_level(ebi, inner=DEFAULT_BACKGROUND_INNER):
    """Local background of every image and band: the median of the pixels farther than
    ``inner`` x the half side from the image centre. Returns (N, nbands)."""
    ebi = np.asarray(ebi, float)
    _, ny, nx, _ = ebi.shape
    yy, xx = np.indices((ny, nx))
    r = np.hypot(yy - (ny - 1) / 2, xx - (nx - 1) / 2)
    outer = r > inner * min(ny, nx) / 2
    if not outer.any():
        raise ValueError(f"no pixel farther than {inner} x the half side: lower 'inner'")
    return np.median(ebi[:, outer, :], axis=1)


def mask_disc(ebi, radius_pix=DEFAULT_CORE_RADIUS_PIX, center=None, fill="background",
              background_inner=DEFAULT_BACKGROUND_INNER):
    """A copy of ``ebi`` with a disc of pixels replaced in every band.

    Parameters
    ----------
    ebi : array (N, ny, nx, nbands)
    radius_pix : float or array (N,)
        Pixels whose centres lie within this distance [pixels] of ``center`` are
        replaced; an array gives every image its own radius (e.g. 0.2 R500c).
    center : (y, x) or array (N, 2), optional
        Disc centre in pixel coordinates; default the image centre ((ny-1)/2, (nx-1)/2),
        where the EBI puts the cluster.
    fill : 'background' or 'zero' or float
        ``'background'``: the image's own `background_level` in each band (the default:
        the masked region then looks like empty sky, not a hole); ``'zero'``: 0 counts.

    Returns
    -------
    masked : array, same shape, float32
    n_pixels : int or array
        Number of pixels replaced per image.
    """
    out = np.array(ebi, dtype=np.float32, copy=True)
    n, ny, nx, nb = out.shape
    yy, xx = np.indices((ny, nx))
    if center is None:
        center = np.tile([(ny - 1) / 2, (nx - 1) / 2], (n, 1))
    center = np.broadcast_to(np.asarray(center, float), (n, 2))
    if isinstance(fill, str) and fill == "background":
        values = background_level(out, background_inner)
    elif isinstance(fill, str) and fill == "zero":
        values = np.zeros((n, nb))
    elif isinstance(fill, str):
        raise ValueError(f"fill must be 'background', 'zero' or a number; got {fill!r}")
    else:
        values = np.full((n, nb), float(fill))
    radius = np.broadcast_to(np.asarray(radius_pix, float), (n,))
    npix = np.zeros(n, dtype=int)
    for i in range(n):
        disc = np.hypot(yy - center[i, 0], xx - center[i, 1]) <= radius[i]
        out[i][disc] = values[i]
        npix[i] = int(disc.sum())
    return out, npix


def core_masking_test(ensemble, ebi, z, log10_true, radius_pix=DEFAULT_CORE_RADIUS_PIX,
                      fill="background", control_offset_pix=6.0, selections=None,
                      mass_bins=None, seed=0, batch_size=256, progress=False,
                      catalog=None):
    """Does the network use the cluster core? Scatter with the core masked vs not.

    Three predictions of the same clusters are compared with the true masses:
    ``unmasked``; ``core_masked`` (pixels within ``radius_pix`` of the image centre
    replaced, see `mask_disc`); and ``control_masked`` (an equal disc centred
    ``control_offset_pix`` from the centre at a random angle per cluster: the loss of
    information from masking a region that is not the core). If the core mattered, the
    core-masked scatter would rise above both others.

    Parameters
    ----------
    ensemble : `astro_clustermass.cnn.ensemble.Ensemble` (or anything with ``predict``)
    ebi : array (N, ny, nx, nbands); z, log10_true : arrays (N,)
    radius_pix : float or array (N,)
        Core radius [EBI pixels] (default `DEFAULT_CORE_RADIUS_PIX`); an array gives each
        cluster its own (e.g. 0.2 R500c in pixels, seed 004's core).
    fill : 'background' (default), 'zero' or a number; see `mask_disc`.
    control_offset_pix : float, array (N,) or None
        Distance of the control disc from the centre [pixels], at least 2 x the radius;
        None: no control.
    selections : dict, optional
        Passed to `~astro_clustermass.evaluation.metrics.evaluate` (needs ``catalog``
        columns); default every row.
    mass_bins : sequence, optional
        Passed to `evaluate`.
    catalog : `~astropy.table.Table`, optional
        Catalogue rows of the images (for selection columns); not modified.

    Returns
    -------
    metrics : `~astropy.table.QTable`
        `evaluate` of the estimators ``unmasked``, ``core_masked`` and
        ``control_masked``; ``meta['core_masking']`` records the settings and the mean
        and standard deviation of the shift of the predicted mass [dex].
    predictions : `~astropy.table.QTable`
        The three predictions (columns ``log10M500c_<variant>`` and ``_err``).
    """
    from ..evaluation.metrics import DEFAULT_MASS_BINS, evaluate

    z = np.asarray(z, float)
    t = np.asarray(log10_true, float)
    n, ny, nx, _ = np.shape(ebi)
    variants = {"unmasked": np.asarray(ebi, np.float32)}
    core, npix = mask_disc(ebi, radius_pix, fill=fill)
    variants["core_masked"] = core
    radius = np.broadcast_to(np.asarray(radius_pix, float), (n,))
    if control_offset_pix is not None:
        offset = np.broadcast_to(np.asarray(control_offset_pix, float), (n,))
        if np.any(offset + radius > min(ny, nx) / 2 - 1):
            raise ValueError("control disc would leave the image: lower control_offset_pix")
        if np.any(offset < 2 * radius):
            raise ValueError("control disc overlaps the core: control_offset_pix must be at "
                             "least 2 x radius_pix")
        ang = np.random.default_rng(seed).uniform(0, 2 * np.pi, n)
        centers = np.stack([(ny - 1) / 2 + offset * np.sin(ang),
                            (nx - 1) / 2 + offset * np.cos(ang)], axis=1)
        variants["control_masked"], _ = mask_disc(ebi, radius_pix, center=centers, fill=fill)
    preds = QTable()
    if catalog is not None:
        for name in catalog.colnames:
            if np.ndim(catalog[name]) == 1:
                preds[name] = catalog[name]
    preds["log10M500c_true"] = t * u.dex
    for name, images in variants.items():
        mean, sstar, _, _ = ensemble.predict(images, z, batch_size=batch_size,
                                             progress=progress)
        preds[f"log10M500c_{name}"] = np.asarray(mean, float) * u.dex
        preds[f"log10M500c_{name}_err"] = np.asarray(sstar, float) * u.dex
    metrics = evaluate(preds, estimators=list(variants), true_mass="log10M500c_true",
                       selections=selections or {"all": ""},
                       mass_bins=mass_bins or DEFAULT_MASS_BINS)
    base = np.asarray(preds["log10M500c_unmasked"].value)
    scalar = np.ndim(radius_pix) == 0
    info = {"radius_pix": float(radius_pix) if scalar else "per cluster",
            "radius_pix_median": float(np.median(radius)),
            "pixels_masked": int(np.median(npix)),
            "pixels_masked_mean": float(np.mean(npix)),
            "fill": fill if isinstance(fill, str) else float(fill),
            "control_offset_pix": (None if control_offset_pix is None else
                                   float(np.median(control_offset_pix))),
            "seed": int(seed)}
    for name in variants:
        if name == "unmasked":
            continue
        shift = np.asarray(preds[f"log10M500c_{name}"].value) - base
        info[f"{name}_shift_mean_dex"] = float(np.nanmean(shift))
        info[f"{name}_shift_std_dex"] = float(np.nanstd(shift))
    metrics.meta["core_masking"] = info
    return metrics, preds
