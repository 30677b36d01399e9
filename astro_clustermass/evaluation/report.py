"""The comparison report: metrics table plus figures, as one self-contained file.

HTML (default): PNG figures embedded as base64, the summary and binned metrics as
tables, notes and provenance; nothing else to ship alongside. PDF (``.pdf`` suffix):
one page of summary text, then one figure per page. Either is written atomically (a
temporary file in the same directory, then `os.replace`).
"""

from __future__ import annotations

import base64
import datetime
import html
import json
from dataclasses import dataclass, field

import numpy as np

from ..io.atomic import atomic_write
from ..utils.logger import log
from ..utils.optional import require
from .metrics import DEFAULT_MASS_BINS, DEFAULT_Z_BINS, collect, evaluate_data

__all__ = ["Section", "write_report", "summary_rows", "format_summary", "format_binned",
           "report_figures"]


@dataclass
class Section:
    """Extra report content (e.g. ensemble diagnostics): heading, text, figures."""

    heading: str
    text: str = ""
    figures: list = field(default_factory=list)  # (caption, Figure)
    table: object = None  # optional astropy Table shown below the text


_SUMMARY_COLS = ("estimator", "selection", "n", "n_no_estimate", "bias", "bias_err",
                 "scatter", "scatter_err", "scatter_nmad", "mean_sigma", "pull_std",
                 "coverage68", "coverage95")


def _val(x):
    v = getattr(x, "unmasked", x)
    v = getattr(v, "value", v)
    if bool(np.any(getattr(x, "mask", False))):
        return float("nan")
    return v


def summary_rows(table):
    """The rows of ``table`` without binning (one per estimator and selection)."""
    return table[np.asarray(table["binning"]) == "all"]


def format_summary(table, fmt="text"):
    """Summary of a metrics table as fixed-width text (or RST with ``fmt='rst'``).

    Columns: estimator, selection, N, N without estimate, bias +- error, scatter +-
    error, robust (NMAD) scatter, mean sigma, pull std, 68% and 95% coverage.
    """
    rows = summary_rows(table)
    head = ["estimator", "selection", "N", "no est.", "bias", "scatter", "NMAD", "<sigma>",
            "pull std", "cov68", "cov95"]
    lines = []
    for r in rows:
        def f(key, spec):
            v = _val(r[key])
            return "--" if not np.isfinite(v) else format(v, spec)
        lines.append([str(r["estimator"]), str(r["selection"]), str(int(r["n"])),
                      str(int(r["n_no_estimate"])),
                      f"{f('bias', '+.3f')}+-{f('bias_err', '.3f')}",
                      f"{f('scatter', '.3f')}+-{f('scatter_err', '.3f')}",
                      f("scatter_nmad", ".3f"), f("mean_sigma", ".3f"), f("pull_std", ".2f"),
                      f("coverage68", ".3f"), f("coverage95", ".3f")])
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
              for i, h in enumerate(head)]
    if fmt == "rst":
        rule = "  ".join("=" * w for w in widths)
        out = [rule, "  ".join(h.ljust(w) for h, w in zip(head, widths)), rule]
        out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines]
        out.append(rule)
        return "\n".join(out)
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join(out)


def format_binned(table, selection, binning="log10M", key="bias", fmt="rst"):
    """One metric per bin (rows) and estimator (columns), as an RST (or text) table.

    Cells read ``value+-error (n)`` for ``bias`` and ``scatter`` (their standard errors),
    ``value (n)`` otherwise; ``--`` where undefined.
    """
    rows = table[(np.asarray(table["selection"]) == selection)
                 & (np.asarray(table["binning"]) == binning)]
    names = list(dict.fromkeys(np.asarray(rows["estimator"]).tolist()))
    bins = sorted({(float(a), float(b)) for a, b in zip(rows["bin_lo"], rows["bin_hi"])})
    err = {"bias": "bias_err", "scatter": "scatter_err"}.get(key)
    label = "log10 M_true" if binning == "log10M" else binning
    head = [label] + names
    lines = []
    for lo, hi in bins:
        line = [f"{lo:g}-{hi:g}"]
        for name in names:
            r = rows[(np.asarray(rows["estimator"]) == name)
                     & np.isclose(np.asarray(rows["bin_lo"], float), lo)][0]
            v = _val(r[key])
            if not np.isfinite(v):
                line.append(f"-- ({int(r['n'])})")
                continue
            cell = f"{v:+.3f}" if key == "bias" else f"{v:.3f}"
            if err is not None and np.isfinite(_val(r[err])):
                cell += f"+-{_val(r[err]):.3f}"
            line.append(f"{cell} ({int(r['n'])})")
        lines.append(line)
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
              for i, h in enumerate(head)]
    fmt_line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    if fmt == "rst":
        rule = "  ".join("=" * w for w in widths)
        return "\n".join([rule, fmt_line(head), rule, *map(fmt_line, lines), rule])
    return "\n".join([fmt_line(head), *map(fmt_line, lines)])


def report_figures(table, data):
    """The standard figures: (caption, Figure) pairs for every selection."""
    from . import plots

    figs = [("Mass and redshift distributions of the catalogue and of each selection.",
             plots.plot_mass_redshift(data))]
    for sel in data.selections:
        if not any(data.usable(e, sel).any() for e in data.estimates):
            continue
        figs.append((f"[{sel}] Estimated vs true mass; colour: predicted sigma.",
                     plots.plot_pred_vs_true(data, sel)))
        figs.append((f"[{sel}] Residuals and predicted sigmas.",
                     plots.plot_residual_histograms(data, sel)))
        figs.append((f"[{sel}] Bias and scatter per bin of true mass and redshift.",
                     plots.plot_binned_metrics(table, sel)))
        figs.append((f"[{sel}] Coverage curve and PIT histogram.",
                     plots.plot_calibration(data, sel)))
    return figs


def _html_table(table, columns, digits=3):
    out = ["<table>", "<tr>" + "".join(
        f"<th>{html.escape(c)}" + (f" [{table[c].unit}]" if getattr(table[c], "unit", None)
                                    and str(table[c].unit) else "") + "</th>"
        for c in columns) + "</tr>"]
    for r in table:
        cells = []
        for c in columns:
            v = r[c]
            if isinstance(v, (str, np.str_)):
                cells.append(html.escape(str(v)))
                continue
            x = _val(v)
            if np.ndim(x):
                cells.append(html.escape(" ".join(str(int(a)) for a in np.ravel(x))))
            elif isinstance(x, (int, np.integer)):
                cells.append(str(int(x)))
            else:
                cells.append("&ndash;" if not np.isfinite(x) else f"{float(x):.{digits}f}")
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


_CSS = """body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}
table{border-collapse:collapse;font-size:12px;margin:0.5em 0}
td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}
th{background:#eee}figure{margin:1em 0}figcaption{font-size:13px;color:#333}
img{max-width:100%}pre{background:#f6f6f6;padding:0.5em;font-size:11px;overflow-x:auto}"""


def _render_html(table, figures, sections, title, dpi):
    from .plots import figure_to_png

    meta = table.meta.get("astro_clustermass_evaluation", {})
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts.append(f"<p>astro_clustermass {html.escape(str(meta.get('version', '')))}, "
                 f"{html.escape(str(meta.get('date', '')))}; {meta.get('n_rows_catalog', '?')} "
                 f"catalogue rows; true mass column <code>"
                 f"{html.escape(str(meta.get('true_mass_column', '')))}</code>.</p>")
    parts.append("<p>Residual d = log10 M_est &minus; log10 M_true [dex]. scatter: standard "
                 "deviation of d (ddof=1); NMAD: 1.4826 &times; median |d &minus; median(d)|; "
                 "&lt;sigma&gt;: mean predicted sigma; pull std: std of d/&sigma;; cov68/cov95: "
                 "fraction of true masses inside the central 68%/95% interval of the "
                 "prediction (0.683/0.950 if calibrated). Errors: standard errors.</p>")
    parts.append("<h2>Summary</h2>")
    parts.append(_html_table(summary_rows(table), _SUMMARY_COLS))
    sels = meta.get("selections", {})
    if sels:
        parts.append("<p>Selections: " + "; ".join(
            f"<b>{html.escape(k)}</b>: {html.escape(v) or 'every row'}"
            for k, v in sels.items()) + "</p>")
    notes = meta.get("notes") or []
    if notes:
        parts.append("<h3>Notes</h3><ul>" + "".join(f"<li>{html.escape(n)}</li>"
                                                   for n in notes) + "</ul>")
    for caption, fig in figures:
        png = base64.b64encode(figure_to_png(fig, dpi=dpi)).decode("ascii")
        parts.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,"
                     f"{png}'><figcaption>{html.escape(caption)}</figcaption></figure>")
    for sec in sections or ():
        parts.append(f"<h2>{html.escape(sec.heading)}</h2>")
        if sec.text:
            parts.append("".join(f"<p>{html.escape(p)}</p>" for p in sec.text.split("\n\n")))
        if sec.table is not None:
            parts.append(_html_table(sec.table, sec.table.colnames))
        for caption, fig in sec.figures:
            png = base64.b64encode(figure_to_png(fig, dpi=dpi)).decode("ascii")
            parts.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;"
                         f"base64,{png}'><figcaption>{html.escape(caption)}</figcaption>"
                         "</figure>")
    binned = table[np.asarray(table["binning"]) != "all"]
    parts.append("<h2>Binned metrics</h2><details><summary>show table</summary>")
    parts.append(_html_table(binned, [c for c in table.colnames]))
    parts.append("</details><h2>Provenance</h2><pre>" + html.escape(
        json.dumps(meta, indent=1, default=str)) + "</pre></body></html>")
    return "\n".join(parts)


def _write_pdf(path, table, figures, sections, title):
    require("matplotlib", feature="evaluation reports")
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    def write(tmp):
        with PdfPages(tmp) as pdf:
            page = Figure(figsize=(11.7, 8.3))
            text = f"{title}\n\n" + format_summary(table)
            notes = table.meta.get("astro_clustermass_evaluation", {}).get("notes") or []
            if notes:
                text += "\n\nNotes:\n" + "\n".join(f"- {n}" for n in notes)
            page.text(0.02, 0.98, text, va="top", ha="left", family="monospace", fontsize=7)
            pdf.savefig(page)
            all_figs = list(figures) + [f for s in (sections or ()) for f in s.figures]
            for caption, fig in all_figs:
                fig.text(0.01, 0.002, caption, fontsize=7, va="bottom")
                pdf.savefig(fig)

    atomic_write(path, write, makedirs=True)


def write_report(path, catalog, estimators=None, true_mass="M500c", selections=None,
                 mass_bins=DEFAULT_MASS_BINS, z_bins=DEFAULT_Z_BINS, sections=None,
                 title="Comparison of mass estimators", figures=True, dpi=90):
    """Evaluate the estimators of ``catalog`` and write the report to ``path``.

    Parameters
    ----------
    path : str
        Output file; ``.pdf`` writes a PDF, anything else self-contained HTML.
    catalog : `~astropy.table.Table`
        Catalogue with true masses and estimator columns (see
        `~astro_clustermass.evaluation.metrics.evaluate`, whose other parameters these are).
    sections : list of `Section`, optional
        Extra content appended after the standard figures (ensemble diagnostics,
        interpretability).
    title : str
    figures : bool
        Include the standard figures (False: tables only).
    dpi : int
        Resolution of the embedded PNGs.

    Returns
    -------
    `~astropy.table.QTable`
        The metrics table (`~astro_clustermass.evaluation.metrics.evaluate`).
    """
    data = collect(catalog, estimators, true_mass, selections)
    table = evaluate_data(data, catalog, mass_bins, z_bins)
    figs = report_figures(table, data) if figures else []
    if str(path).lower().endswith(".pdf"):
        _write_pdf(path, table, figs, sections, title)
    else:
        text = _render_html(table, figs, sections, title, dpi)

        def write(tmp):
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)

        atomic_write(path, write, makedirs=True)
    log.info("wrote evaluation report %s (%s)", path,
             datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    return table
