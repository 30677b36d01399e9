"""Helpers for testing estimators and plugins (a pytest plugin, and a context manager).

In a plugin's tests, load the fixture with one line in ``conftest.py``::

    pytest_plugins = ["astro_clustermass.testing"]

and test the estimator through the package's own entry points, in a registry that holds
only what the test puts there (the built-ins and the installed plugins stay out unless
asked for)::

    def test_my_estimator(estimator_registry):
        from my_plugin import plugin

        estimator_registry(plugin)              # the module with the hook
        out = astro_clustermass.add_mass_columns(table, estimators=["my-estimator"])

Without pytest, `temporary_registry` does the same as a context manager.
"""

from __future__ import annotations

import contextlib

__all__ = ["temporary_registry", "estimator_registry"]


@contextlib.contextmanager
def temporary_registry(*providers, builtins=False, installed=False, strict=True):
    """A fresh estimator registry, made the process's default while the block runs.

    `~astro_clustermass.add_mass_columns`, `~astro_clustermass.get_estimator` and
    `~astro_clustermass.list_estimators` then see exactly the estimators of
    ``providers`` (plus the built-ins and the installed plugins, if asked for). The
    previous registry is back afterwards, whatever happens in the block.

    Parameters
    ----------
    *providers
        Plugin modules or objects with the ``astro_clustermass_estimators`` hook, or
        `~astro_clustermass.EstimatorSpec` objects, or
        `~astro_clustermass.MassEstimator` subclasses (see
        `astro_clustermass.registry.Registry.add`).
    builtins : bool
        Also the package's own estimators.
    installed : bool
        Also the plugins installed in the environment (their entry points).
    strict : bool
        Raise at once when a provider fails to load or registers a name twice (default;
        a test wants to know), instead of the warning a user gets.

    Yields
    ------
    `~astro_clustermass.registry.Registry`
    """
    from . import registry as _registry

    new = _registry.Registry(strict=strict, disabled=(), builtins=builtins,
                             entry_points=None if installed else [])
    for provider in providers:
        new.add(provider)
    previous = _registry._default
    _registry._default = new
    try:
        yield new
    finally:
        _registry._default = previous


try:
    import pytest
except ImportError:  # pragma: no cover - the module is also importable without pytest
    pytest = None

if pytest is not None:
    @pytest.fixture
    def estimator_registry():
        """pytest fixture: ``estimator_registry(*providers, builtins=False,
        installed=False, strict=True)`` makes a `temporary_registry` the default until
        the test ends, and returns it."""
        with contextlib.ExitStack() as stack:
            def make(*providers, **options):
                return stack.enter_context(temporary_registry(*providers, **options))

            yield make
else:  # pragma: no cover
    estimator_registry = None
