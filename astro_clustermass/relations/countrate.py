"""Count rate - M500c - z relations (eROSITA 0.2-2.3 keV count rates, eRASS1 form).

The count rate is an observed quantity and carries no cosmology; the relation's
D_L(z) and E(z) terms are evaluated in the relation's fiducial cosmology (or, if asked,
in the user's), see :ref:`relations`.
"""

from __future__ import annotations

from .base import ScalingRelation, load_relation

__all__ = ["CountRateMassRelation", "erass1"]


class CountRateMassRelation(ScalingRelation):
    """A `ScalingRelation` whose observable is a count rate (``count_rate``)."""


def erass1():
    """The eRASS1-form count-rate relation as shipped (``cr-erass1``)."""
    return load_relation("cr-erass1", cls=CountRateMassRelation)
