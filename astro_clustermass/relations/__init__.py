"""Scaling-relation mass estimators: L_X-M (Chiu et al. 2022) and count rate-M (eRASS1).

The parameter sets are YAML files in ``astro_clustermass/data/relations/``; each one
becomes an estimator of the same name. `builtin_estimator_specs` only reads those YAML
files (it is what the registry calls to list estimators); the implementation modules
are imported when an estimator is built.
"""

from __future__ import annotations

import os

from ..utils.data import package_data

__all__ = ["builtin_estimator_specs", "RelationFactory", "ScalingRelation",
           "ScalingRelationEstimator", "load_relation"]

_DATA = package_data("relations")


class RelationFactory:
    """Callable that builds the estimator of one shipped relation on first use."""

    def __init__(self, name):
        self.name = name

    def __call__(self, **options):
        from .estimators import make_estimator

        return make_estimator(self.name, **options)

    def __repr__(self):
        return f"RelationFactory({self.name!r})"


def builtin_estimator_specs():
    """One `~astro_clustermass.core.EstimatorSpec` per shipped relation YAML.

    Reads the YAML files only; builds nothing.
    """
    import yaml

    from ..core import EstimatorSpec

    specs = []
    for fname in sorted(os.listdir(_DATA)):
        if not fname.endswith(".yaml"):
            continue
        with open(os.path.join(_DATA, fname)) as fh:
            data = yaml.safe_load(fh)
        name = data["name"]
        inputs = ("z", data["observable"])
        desc = " ".join(str(data.get("description", "")).split())
        ref = data.get("reference", "")
        specs.append(EstimatorSpec(name=name, factory=RelationFactory(name), inputs=inputs,
                                   description=f"{desc} [{ref}]" if ref else desc,
                                   version=str(data.get("version", "1"))))
    return specs


def __getattr__(attr):
    if attr in ("ScalingRelation", "load_relation"):
        from . import base

        return getattr(base, attr)
    if attr == "ScalingRelationEstimator":
        from .estimators import ScalingRelationEstimator

        return ScalingRelationEstimator
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
