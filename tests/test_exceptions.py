"""The package's warning classes: hierarchy, and the test suite's turning them into errors."""

import warnings

import pytest
from astropy.utils.exceptions import (
    AstropyDeprecationWarning,
    AstropyUserWarning,
    AstropyWarning,
)

import astro_clustermass as acm
from astro_clustermass.utils import exceptions
from astro_clustermass.utils.exceptions import (
    AstroClusterMassDeprecationWarning,
    AstroClusterMassUserWarning,
    AstroClusterMassWarning,
    InputDataWarning,
    OutOfRangeWarning,
    PluginWarning,
)

SPECIFIC = [InputDataWarning, OutOfRangeWarning, PluginWarning]


WARNINGS = [n for n in exceptions.__all__ if issubclass(getattr(exceptions, n), Warning)]


def test_all_lists_every_class():
    classes = {name for name, obj in vars(exceptions).items()
               if isinstance(obj, type) and issubclass(obj, (Warning, Exception))
               and obj.__module__ == exceptions.__name__}
    assert classes == set(exceptions.__all__)
    assert set(exceptions.__all__) - set(WARNINGS) == {"EstimatorError", "EstimatorUnavailable"}
    assert exceptions.EstimatorError is acm.EstimatorError


@pytest.mark.parametrize("name", WARNINGS)
def test_every_class_is_a_package_and_astropy_warning(name):
    cls = getattr(exceptions, name)
    assert issubclass(cls, AstroClusterMassWarning)
    assert issubclass(cls, AstropyWarning)


@pytest.mark.parametrize("cls", SPECIFIC + [AstroClusterMassUserWarning])
def test_user_warnings_are_userwarnings(cls):
    # shown by Python's default filters, and filterable as a group
    assert issubclass(cls, UserWarning)
    assert issubclass(cls, AstroClusterMassUserWarning)
    assert not issubclass(cls, AstropyUserWarning)  # astropy's own, not the package's


def test_deprecation_warning_is_astropy_deprecation_not_python_deprecation():
    assert issubclass(AstroClusterMassDeprecationWarning, AstropyDeprecationWarning)
    assert not issubclass(AstroClusterMassDeprecationWarning, DeprecationWarning)
    assert not issubclass(AstroClusterMassDeprecationWarning, UserWarning)


def test_filter_on_the_base_class_catches_every_kind():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", AstroClusterMassWarning)
        for cls in SPECIFIC + [AstroClusterMassDeprecationWarning]:
            warnings.warn(f"a {cls.__name__}", cls)
        warnings.warn("not ours", AstropyUserWarning)
    assert [w.category for w in caught] == SPECIFIC + [AstroClusterMassDeprecationWarning]


def test_filter_on_one_kind_leaves_the_others():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", OutOfRangeWarning)
        warnings.warn("extrapolated", OutOfRangeWarning)
        warnings.warn("unit assumed", InputDataWarning)
    assert [w.category for w in caught] == [InputDataWarning]


@pytest.mark.parametrize("cls", SPECIFIC)
def test_test_suite_turns_package_warnings_into_errors(cls):
    # pyproject's [tool.pytest.ini_options] filterwarnings has
    # "error::astro_clustermass.utils.exceptions.AstroClusterMassWarning"; a test that
    # expects one of these warnings must say so with pytest.warns.
    with pytest.raises(cls, match="turned into an error"):
        warnings.warn("turned into an error", cls)
    with pytest.warns(cls, match="expected"):
        warnings.warn("expected", cls)
