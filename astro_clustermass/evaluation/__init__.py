"""Compare mass estimators on the same clusters: metrics, plots, reports, interpretation.

- `~astro_clustermass.evaluation.metrics` (numpy/astropy only): `evaluate` returns a
  `~astropy.table.QTable` of scatter, robust scatter, bias, mean predicted sigma,
  68%/95% coverage and PIT histograms per estimator, selection, mass bin and redshift bin;
- `~astro_clustermass.evaluation.plots` (matplotlib, Agg): the figures of the report;
- `~astro_clustermass.evaluation.report`: `write_report`, a self-contained HTML report
  (or a multi-page PDF), written atomically;
- `~astro_clustermass.evaluation.interpret` (imports torch inside its functions only):
  ensemble-member disagreement, gradient maps of the CNN ensemble (seed 004's
  DeepDream-style analysis) and the core-masking test;
- `~astro_clustermass.evaluation.cli`: the ``astro-clustermass evaluate`` subcommand.

Importing this package imports neither torch nor matplotlib.
"""

from .metrics import (DEFAULT_MASS_BINS, DEFAULT_SELECTIONS, DEFAULT_Z_BINS, EvaluationData,
                      collect, coverage_curve, evaluate, find_estimators, residual_metrics,
                      selection_mask)

__all__ = ["evaluate", "collect", "find_estimators", "residual_metrics", "coverage_curve",
           "selection_mask", "EvaluationData", "DEFAULT_SELECTIONS", "DEFAULT_MASS_BINS",
           "DEFAULT_Z_BINS", "write_report"]


def write_report(*args, **kwargs):
    """See `astro_clustermass.evaluation.report.write_report` (imports matplotlib)."""
    from .report import write_report as _write_report

    return _write_report(*args, **kwargs)
