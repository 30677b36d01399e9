"""Compare mass estimators on the same clusters: metrics, plots, reports.

- `~astro_clustermass.evaluation.metrics` (numpy/astropy only): `evaluate` returns a
  `~astropy.table.QTable` of scatter, robust scatter, bias, mean predicted sigma,
  68%/95% coverage and PIT histograms per estimator, selection, mass bin and redshift bin;
- `~astro_clustermass.evaluation.plots` (matplotlib, Agg): the figures of the report;
- `~astro_clustermass.evaluation.report`: `write_report`, a self-contained HTML report
  (or a multi-page PDF), written atomically;

It never imports the CNN (what the CNN looks at is `astro_clustermass.cnn.interpret`);
importing it imports neither torch nor matplotlib. The ``astro-clustermass evaluate``
command is `astro_clustermass.cli.evaluate`.
"""

from .metrics import (
    DEFAULT_MASS_BINS,
    DEFAULT_SELECTIONS,
    DEFAULT_Z_BINS,
    EvaluationData,
    collect,
    coverage_curve,
    evaluate,
    find_estimators,
    residual_metrics,
    selection_mask,
)

__all__ = ["evaluate", "collect", "find_estimators", "residual_metrics", "coverage_curve",
           "selection_mask", "EvaluationData", "DEFAULT_SELECTIONS", "DEFAULT_MASS_BINS",
           "DEFAULT_Z_BINS", "write_report"]


def write_report(*args, **kwargs):
    """See `astro_clustermass.evaluation.report.write_report` (imports matplotlib)."""
    from .report import write_report as _write_report

    return _write_report(*args, **kwargs)
