"""Figures comparing mass estimators (matplotlib, no pyplot state: figures are
`matplotlib.figure.Figure` objects rendered with the Agg canvas).

Every function returns a `~matplotlib.figure.Figure`; every axis is labelled with its
unit. Inputs are the `~astro_clustermass.evaluation.metrics.EvaluationData` and the
metrics table of `~astro_clustermass.evaluation.metrics.evaluate`.
"""

from __future__ import annotations

import numpy as np

from ..utils.optional import require
from .metrics import coverage_curve

__all__ = ["estimator_colors", "plot_pred_vs_true", "plot_residual_histograms",
           "plot_binned_metrics", "plot_calibration", "plot_mass_redshift",
           "plot_band_images", "plot_gradient_maps", "plot_deepdream_profiles",
           "figure_to_png"]

LOG_TRUE = r"true $\log_{10}(M_{500c}/M_\odot)$ [dex]"
LOG_EST = r"estimated $\log_{10}(M_{500c}/M_\odot)$ [dex]"
RESID = r"$\log_{10} M_{\rm est} - \log_{10} M_{\rm true}$ [dex]"
SIGMA = r"predicted $\sigma$ of $\log_{10} M_{500c}$ [dex]"


def _figure(**kwargs):
    require("matplotlib", feature="the evaluation figures")
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def figure_to_png(fig, dpi=90):
    """PNG bytes of a figure (Agg canvas)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def estimator_colors(names):
    """A fixed colour per estimator name (matplotlib's tab10 cycle)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def _limits(*arrays):
    vals = np.concatenate([np.asarray(a, float).ravel() for a in arrays])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 13.0, 15.5
    lo, hi = float(vals.min()), float(vals.max())  # every point shown, outliers included
    pad = 0.03 * max(hi - lo, 0.5)
    return lo - pad, hi + pad


def plot_pred_vs_true(data, selection, estimators=None, max_points=20000, seed=0):
    """Estimated vs true log10 M500c, one panel per estimator, coloured by sigma.

    Parameters
    ----------
    data : `~astro_clustermass.evaluation.metrics.EvaluationData`
    selection : str
        Selection name.
    estimators : list of str, optional
    max_points : int
        Random subsample drawn per panel above this number (the statistics quoted in the
        titles use every row).
    """
    names = list(estimators or data.estimates)
    ncol = min(3, max(1, len(names)))
    nrow = int(np.ceil(len(names) / ncol)) if names else 1
    fig = _figure(figsize=(4.4 * ncol, 3.9 * nrow), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    all_s = [data.estimates[n][1] for n in names]
    finite = np.concatenate([s[np.isfinite(s)] for s in all_s]) if all_s else np.array([])
    vmin, vmax = (np.percentile(finite, [2, 98]) if finite.size else (0.0, 0.5))
    lo, hi = _limits(data.log10_true, *[data.estimates[n][0] for n in names])
    rng = np.random.default_rng(seed)
    sc = None
    for ax, name in zip(axes, names):
        t, d, s, _ = data.residuals(name, selection)
        idx = np.arange(t.size)
        if t.size > max_points:
            idx = rng.choice(t.size, max_points, replace=False)
        sc = ax.scatter(t[idx], t[idx] + d[idx], c=s[idx], s=4, cmap="viridis", vmin=vmin,
                        vmax=vmax, rasterized=True, linewidths=0)
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        title = f"{name} (N={t.size})"
        if t.size > 1:
            title += f"\nscatter {np.std(d, ddof=1):.3f} dex, <sigma> {np.mean(s):.3f} dex"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(LOG_TRUE)
        ax.set_ylabel(LOG_EST)
    for ax in axes[len(names):]:
        ax.set_axis_off()
    if sc is not None:
        fig.colorbar(sc, ax=axes[:len(names)].tolist(), label=SIGMA, shrink=0.9)
    fig.suptitle(f"Estimated vs true mass, selection: {selection}", fontsize=10)
    return fig


def plot_residual_histograms(data, selection, estimators=None, bins=40):
    """Histograms of the residuals and of the predicted sigmas, one line per estimator."""
    names = list(estimators or data.estimates)
    colors = estimator_colors(list(data.estimates))
    fig = _figure(figsize=(10, 3.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    res = {n: data.residuals(n, selection) for n in names}
    dall = np.concatenate([r[1] for r in res.values()]) if res else np.array([0.0])
    lim = np.percentile(np.abs(dall), 99.5) if dall.size else 1.0
    lim = max(lim, 0.2)
    sall = np.concatenate([r[2] for r in res.values()]) if res else np.array([0.2])
    smax = np.percentile(sall, 99.5) * 1.1 if sall.size else 0.5
    for n in names:
        _, d, s, _ = res[n]
        if d.size == 0:
            continue
        label = f"{n}: mean {np.mean(d):+.3f}"
        if d.size > 1:
            label += f", std {np.std(d, ddof=1):.3f}"
        ax1.hist(d, bins=bins, range=(-lim, lim), histtype="step", density=True,
                 color=colors[n], label=label)
        ax2.hist(s, bins=bins, range=(0, smax), histtype="step", density=True,
                 color=colors[n], label=f"{n}: mean {np.mean(s):.3f}")
    ax1.axvline(0, color="k", lw=0.6)
    ax1.set_xlabel(RESID)
    ax1.set_ylabel("probability density [1/dex]")
    ax2.set_xlabel(SIGMA)
    ax2.set_ylabel("probability density [1/dex]")
    for ax in (ax1, ax2):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(f"Residuals and predicted uncertainties, selection: {selection}", fontsize=10)
    return fig


def plot_binned_metrics(table, selection, estimators=None):
    """Bias (with its standard error) and scatter per bin of true mass and of redshift."""
    names = list(estimators or dict.fromkeys(np.asarray(table["estimator"]).tolist()))
    colors = estimator_colors(list(dict.fromkeys(np.asarray(table["estimator"]).tolist())))
    fig = _figure(figsize=(10, 6.5), layout="constrained")
    axes = fig.subplots(2, 2, squeeze=False)
    sel_rows = np.asarray(table["selection"]) == selection
    for j, (binning, xlabel) in enumerate((("log10M", LOG_TRUE), ("z", "redshift z"))):
        rows_b = sel_rows & (np.asarray(table["binning"]) == binning)
        for k, n in enumerate(names):
            rows = rows_b & (np.asarray(table["estimator"]) == n)
            if not rows.any():
                continue
            sub = table[rows]
            lo = np.asarray(sub["bin_lo"], float)
            hi = np.asarray(sub["bin_hi"], float)
            width = hi - lo
            x = 0.5 * (lo + hi) + (k - (len(names) - 1) / 2) * 0.06 * width
            for i, (key, err) in enumerate((("bias", "bias_err"), ("scatter", "scatter_err"))):
                y = np.ma.filled(np.ma.masked_invalid(_values(sub[key])), np.nan)
                e = np.ma.filled(np.ma.masked_invalid(_values(sub[err])), np.nan)
                axes[i, j].errorbar(x, y, yerr=e, xerr=width / 2, fmt="o", ms=3, capsize=2,
                                    color=colors[n], label=n, lw=0.8)
        axes[0, j].axhline(0, color="k", lw=0.6)
        axes[0, j].set_ylabel(r"bias: mean $\Delta\log_{10} M$ [dex]")
        axes[1, j].set_ylabel(r"scatter: std $\Delta\log_{10} M$ [dex]")
        for i in range(2):
            axes[i, j].set_xlabel(xlabel)
    if axes[0, 0].get_legend_handles_labels()[0]:
        axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"Binned bias and scatter (error bars: standard errors), selection: "
                 f"{selection}", fontsize=10)
    return fig


def _values(col):
    """Float array of a (masked) quantity column, NaN where masked."""
    v = getattr(col, "unmasked", col)
    v = np.array(getattr(v, "value", v), dtype=float)
    mask = np.asarray(getattr(col, "mask", False), dtype=bool)
    if mask.ndim:
        v[mask] = np.nan
    return v


def plot_calibration(data, selection, estimators=None, pit_bins=10):
    """Coverage (calibration) curve and PIT histogram, one line per estimator."""
    from scipy.special import ndtr

    names = list(estimators or data.estimates)
    colors = estimator_colors(list(data.estimates))
    fig = _figure(figsize=(10, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot([0, 1], [0, 1], "k-", lw=0.6, label="calibrated")
    edges = np.linspace(0, 1, pit_bins + 1)
    for n in names:
        _, d, s, _ = data.residuals(n, selection)
        if d.size == 0:
            continue
        p, obs = coverage_curve(d, s)
        ax1.plot(p, obs, "o-", ms=3, color=colors[n], label=n)
        pit = ndtr(-d / s)
        h, _ = np.histogram(pit, bins=edges)
        ax2.stairs(h / max(d.size, 1) * pit_bins, edges, color=colors[n], label=n)
    ax2.axhline(1, color="k", lw=0.6)
    ax1.set_xlabel("nominal probability of the central interval")
    ax1.set_ylabel("fraction of true masses inside")
    ax1.set_xlim(0, 1)
    ax1.set_ylim(0, 1)
    ax2.set_xlabel(r"PIT = $\Phi((\log_{10} M_{\rm true} - \mu)/\sigma)$")
    ax2.set_ylabel("density (1 = calibrated)")
    for ax in (ax1, ax2):
        ax.legend(fontsize=7)
    fig.suptitle(f"Calibration, selection: {selection}", fontsize=10)
    return fig


def plot_mass_redshift(data, max_points=20000, seed=0):
    """True mass vs redshift of the catalogue and of each selection, with histograms."""
    fig = _figure(figsize=(10, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    colors = estimator_colors(list(data.selections))
    rng = np.random.default_rng(seed)
    t = data.log10_true
    has_z = data.z is not None
    for name, mask in data.selections.items():
        ok = mask & np.isfinite(t)
        idx = np.flatnonzero(ok)
        if has_z:
            pts = idx if idx.size <= max_points else rng.choice(idx, max_points, replace=False)
            ax1.scatter(data.z[pts], t[pts], s=3, color=colors[name], rasterized=True,
                        linewidths=0, label=f"{name} (N={ok.sum()})")
        ax2.hist(t[ok], bins=30, histtype="step", color=colors[name],
                 label=f"{name} (N={ok.sum()})")
    if has_z:
        ax1.set_xlabel("redshift z")
        ax1.set_ylabel(LOG_TRUE)
        ax1.legend(fontsize=7, markerscale=3)
    else:
        ax1.text(0.5, 0.5, "no redshift column", ha="center", va="center",
                 transform=ax1.transAxes)
        ax1.set_axis_off()
    ax2.set_xlabel(LOG_TRUE)
    ax2.set_ylabel("clusters per bin")
    ax2.set_yscale("log")
    ax2.legend(fontsize=7)
    fig.suptitle("Mass and redshift distributions of the samples", fontsize=10)
    return fig


def plot_band_images(cubes, titles=None, band_edges_keV=None, pixel_arcsec=24.0,
                     clip=None, suptitle=None):
    """All bands of energy-band images, one row per cluster (seed 000 Fig. 1 and 7).

    Parameters
    ----------
    cubes : array (K, ny, nx, nbands)
        Smoothed counts per pixel.
    titles : list of str, optional
        Row labels.
    band_edges_keV : array (nbands + 1,), optional
        Band edges, for the column titles.
    pixel_arcsec : float
        Pixel size [arcsec] (24" for the seed's 50 x 50 rebinned images).
    clip : float, optional
        Upper limit of the colour scale [counts/pixel] (seed 000 Fig. 7 uses 1.11).
    """
    cubes = np.asarray(cubes, float)
    k, ny, nx, nb = cubes.shape
    fig = _figure(figsize=(1.6 * nb + 1.0, 2.1 * k + 0.5), layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(k, 1))
    half_x, half_y = nx * pixel_arcsec / 2, ny * pixel_arcsec / 2
    extent = (-half_x, half_x, -half_y, half_y)
    for i in range(k):
        sub = subfigs[i]
        axes = np.atleast_1d(sub.subplots(1, nb))
        vmax = clip if clip is not None else max(float(np.nanpercentile(cubes[i], 99.5)), 1e-6)
        im = None
        for b in range(nb):
            ax = axes[b]
            im = ax.imshow(cubes[i, :, :, b], origin="lower", extent=extent, vmin=0, vmax=vmax,
                           cmap="magma", interpolation="nearest")
            ax.tick_params(labelsize=5)
            label = f"band {b + 1}"
            if band_edges_keV is not None:
                label = f"{band_edges_keV[b]:.2f}-{band_edges_keV[b + 1]:.2f} keV"
            ax.set_title(label, fontsize=7)
            ax.set_xlabel(r"$\Delta x$ [arcsec]", fontsize=6)
            if b == 0:
                ax.set_ylabel(r"$\Delta y$ [arcsec]", fontsize=6)
        sub.colorbar(im, ax=axes.tolist(), label="counts / pixel", shrink=0.9,
                     pad=0.01).ax.tick_params(labelsize=6)
        if titles:
            sub.suptitle(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return fig


def plot_gradient_maps(result, pixel_arcsec=24.0, band_edges_keV=None):
    """Gradient (saliency) maps averaged in mass bins (see
    `astro_clustermass.cnn.interpret.gradient_maps`).

    One row per mass bin: the band-summed mean gradient map; each band's share of the
    summed absolute gradient and of the summed absolute gradient x input; the radial profiles
    of the mean gradient and of gradient x input [arcsec]; and, when the result has
    them, the profiles in R / R500c.
    """
    maps = np.asarray(result["mean_gradient"], float)      # (B, ny, nx, nb)
    absmaps = np.asarray(result["mean_abs_gradient"], float)
    gxi = np.asarray(result.get("mean_grad_x_input", np.zeros_like(maps)), float)
    bins = result["bins"]
    counts = result["n"]
    unit = result.get("unit", "dex per count")
    nbin, ny, nx, nb = maps.shape
    has_r500 = "radial_profile" in result
    ncol = 4 if has_r500 else 3
    fig = _figure(figsize=(4.0 * ncol, 3.2 * nbin + 0.5), layout="constrained")
    axes = fig.subplots(nbin, ncol, squeeze=False)
    half_x, half_y = nx * pixel_arcsec / 2, ny * pixel_arcsec / 2
    yy, xx = np.indices((ny, nx))
    r = np.hypot(yy - (ny - 1) / 2, xx - (nx - 1) / 2) * pixel_arcsec
    redges = np.arange(0, r.max() + pixel_arcsec, pixel_arcsec)
    idx = np.digitize(r.ravel(), redges) - 1
    cnt = np.bincount(idx, minlength=len(redges))[:len(redges) - 1]
    rc = 0.5 * (redges[:-1] + redges[1:])
    xb = np.arange(1, nb + 1)
    for i in range(nbin):
        m2 = maps[i].sum(axis=-1)
        lim = float(np.nanmax(np.abs(m2))) or 1.0
        im = axes[i, 0].imshow(m2, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim,
                               extent=(-half_x, half_x, -half_y, half_y))
        fig.colorbar(im, ax=axes[i, 0], label=f"d log10 M / d N [{unit}]")
        axes[i, 0].set_xlabel(r"$\Delta x$ [arcsec]")
        axes[i, 0].set_ylabel(r"$\Delta y$ [arcsec]")
        lo, hi = bins[i]
        axes[i, 0].set_title(f"{lo:.2f} <= log10 M < {hi:.2f} (N={counts[i]}): "
                             "sum over bands", fontsize=8)
        per_band = absmaps[i].sum(axis=(0, 1))
        per_band_x = np.abs(gxi[i]).sum(axis=(0, 1))
        axes[i, 1].bar(xb - 0.2, per_band / max(per_band.sum(), 1e-30), width=0.4,
                       color="C0", label="|gradient|")
        axes[i, 1].bar(xb + 0.2, per_band_x / max(per_band_x.sum(), 1e-30), width=0.4,
                       color="C1", label="|gradient x input|")
        axes[i, 1].set_xticks(xb)
        if band_edges_keV is not None:
            axes[i, 1].set_xticklabels([f"{0.5 * (band_edges_keV[b] + band_edges_keV[b + 1]):.2f}"
                                        for b in range(nb)], fontsize=6, rotation=45)
            axes[i, 1].set_xlabel("band centre [keV]")
        else:
            axes[i, 1].set_xlabel("band")
        axes[i, 1].set_ylabel("share of the sum over bands")
        axes[i, 1].legend(fontsize=6)
        prof = np.bincount(idx, weights=m2.ravel(), minlength=len(redges))[:len(redges) - 1]
        profx = np.bincount(idx, weights=gxi[i].sum(axis=-1).ravel(),
                            minlength=len(redges))[:len(redges) - 1]
        with np.errstate(invalid="ignore"):
            axes[i, 2].plot(rc, prof / cnt, "o-", ms=3, color="C0")
            tw = axes[i, 2].twinx()
            tw.plot(rc, profx / cnt, "s--", ms=2, color="C1")
        tw.set_ylabel("gradient x input per pixel [dex]", color="C1")
        axes[i, 2].axhline(0, color="k", lw=0.6)
        axes[i, 2].set_xlabel("distance from the image centre [arcsec]")
        axes[i, 2].set_ylabel(f"mean gradient per pixel [{unit}]", color="C0")
        if has_r500:
            re_ = np.asarray(result["radial_edges"], float)
            axes[i, 3].step(re_, np.r_[result["radial_profile"][i], np.nan], where="post",
                            color="C0")
            axes[i, 3].axhline(0, color="k", lw=0.6)
            axes[i, 3].set_xlabel(r"$R/R_{500c}$")
            axes[i, 3].set_ylabel(f"mean gradient per pixel [{unit}]", color="C0")
            if "radial_profile_x_input" in result:
                tw3 = axes[i, 3].twinx()
                tw3.step(re_, np.r_[result["radial_profile_x_input"][i], np.nan],
                         where="post", color="C1", ls="--")
                tw3.set_ylabel("gradient x input per pixel [dex]", color="C1")
    fig.suptitle("Where the CNN ensemble looks: gradient of the predicted log10 M500c with "
                 "respect to the input counts, averaged over clusters", fontsize=10)
    return fig


def plot_deepdream_profiles(result):
    """Fractional change of the counts per annulus of R/R500c after each DeepDream-style
    iteration (see `astro_clustermass.cnn.interpret.deepdream`; seed 004 Fig. 6):
    the median over clusters with the 16-84th percentile band."""
    frac = np.asarray(result["delta_over_n"], float)      # (n_iter, N, nr)
    edges = np.asarray(result["radial_edges"], float)
    masses = np.asarray(result["log10_mass"], float)
    fig = _figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    rc = 0.5 * (edges[:-1] + edges[1:])
    for it in range(frac.shape[0]):
        with np.errstate(invalid="ignore"):
            med = np.nanmedian(frac[it], axis=0)
            lo, hi = np.nanpercentile(frac[it], [16, 84], axis=0)
        dm = np.nanmean(masses[it + 1] - masses[0])
        ax.plot(rc, med, "o-", color=f"C{it}",
                label=f"iteration {it + 1}: mean mass +{dm:.3f} dex")
        ax.fill_between(rc, lo, hi, color=f"C{it}", alpha=0.2)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel(r"$R/R_{500c}$")
    ax.set_ylabel(r"$\Delta N / N$ (all bands)")
    ax.legend(fontsize=7)
    ax.set_title(f"DeepDream-style iterations ({frac.shape[1]} clusters): where photons are "
                 "added", fontsize=9)
    return fig
