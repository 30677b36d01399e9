"""Warning classes of astro_clustermass, in the manner of `astropy.utils.exceptions`.

Every warning the package emits is an instance of `AstroClusterMassWarning`, a subclass
of `~astropy.utils.exceptions.AstropyWarning`. So a user can silence, filter or raise
them as a group, or one kind at a time, with the standard `warnings` machinery::

    import warnings
    from astro_clustermass.utils.exceptions import AstroClusterMassWarning, OutOfRangeWarning

    warnings.simplefilter("ignore", OutOfRangeWarning)       # one kind
    warnings.simplefilter("error", AstroClusterMassWarning)  # all of them become errors

and, as for any astropy warning, astropy's logger shows them (``WARNING: ... [module]``)
when its warnings logging is on.

Which class to use:

- `InputDataWarning`: something in the user's input (a catalogue, event file or image)
  was assumed, repaired or skipped where the result may suffer, e.g. eSASS bands summed
  to stand in for the 0.2-2.3 keV count rate, or event files without TIME whose
  duplicate photons cannot be found. (A column without a unit read in its canonical unit
  is only an INFO message: it is the documented convention, and the plausible ranges
  mask a wrong guess.)
- `OutOfRangeWarning`: an input lies outside the range where an estimator is calibrated
  (a redshift or luminosity beyond a relation's or the network's training range), and the
  estimate is an extrapolation.
- `PluginWarning`: an estimator plugin could not be loaded, misbehaved, or was disabled.
- `AstroClusterMassDeprecationWarning`: a feature that will be removed.
- `AstroClusterMassUserWarning`: anything else the user should hear about.
"""

from astropy.utils.exceptions import AstropyDeprecationWarning, AstropyWarning

__all__ = [
    "AstroClusterMassWarning",
    "AstroClusterMassUserWarning",
    "AstroClusterMassDeprecationWarning",
    "InputDataWarning",
    "OutOfRangeWarning",
    "PluginWarning",
    "EstimatorError",
    "EstimatorUnavailable",
]


class EstimatorError(RuntimeError):
    """An estimator failed or returned something that violates the interface.

    Also importable as ``astro_clustermass.EstimatorError``.
    """


class EstimatorUnavailable(EstimatorError):
    """A registered estimator that has nothing to run with yet (e.g. weights not shipped).

    The automatic choice of estimators leaves such an estimator out with its reason in
    the log, as it does one that lacks its inputs; naming it raises this error.
    """


class AstroClusterMassWarning(AstropyWarning):
    """The base class of every warning astro_clustermass emits.

    A subclass of `~astropy.utils.exceptions.AstropyWarning`, so astropy's logger handles
    it like astropy's own warnings.
    """


class AstroClusterMassUserWarning(UserWarning, AstroClusterMassWarning):
    """A warning for the user of astro_clustermass (shown by Python's default filters).

    Use it when none of the more specific classes fits.
    """


class AstroClusterMassDeprecationWarning(AstroClusterMassWarning, AstropyDeprecationWarning):
    """A feature of astro_clustermass is deprecated and will be removed.

    Also an `~astropy.utils.exceptions.AstropyDeprecationWarning` (which, like it, is not a
    `DeprecationWarning`, so Python shows it by default).
    """


class InputDataWarning(AstroClusterMassUserWarning):
    """Something in the input data was assumed, repaired or skipped.

    For example eSASS bands summed to stand in for the 0.2-2.3 keV count rate, a column
    of another energy band used because it was asked for, event files without a TIME
    column, or an image file that does not record its EBI parameters.
    """


class OutOfRangeWarning(AstroClusterMassUserWarning):
    """An input lies outside the range where an estimator is calibrated.

    The estimate is an extrapolation, e.g. a redshift or luminosity beyond the range of a
    scaling relation's calibration sample or of the CNN ensemble's training set.
    """


class PluginWarning(AstroClusterMassUserWarning):
    """An estimator plugin could not be loaded, misbehaved, or was disabled."""
