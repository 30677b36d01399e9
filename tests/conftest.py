"""Shared fixtures: small catalogues and throw-away plugin distributions."""

import importlib.util
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable
from hypothesis import settings

# The property tests (tests/test_bad_input.py) draw the same examples on every run
# ("ci", the default), so that a test run, CI's included, fails only for a change of the
# code or of a dependency; ACM_HYPOTHESIS_PROFILE=explore draws new ones each run, to look
# for cases the fixed draws miss (docs/validation.rst, "Bad-input suite").
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("ACM_HYPOTHESIS_PROFILE", "ci"))

DATA = Path(__file__).parent / "data"
BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


@pytest.fixture
def data_dir():
    return DATA


@pytest.fixture
def benchmark_script():
    """``load(name)``: the script ``benchmarks/<name>.py`` imported as a module (the
    benchmarks are scripts, not a package; their pieces are tested through this)."""
    def load(name):
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture
def small_catalog():
    """Five clusters with the canonical columns, in a QTable with units."""
    return QTable({
        "z": np.array([0.1, 0.3, 0.5, 0.8, 1.1]),
        "LX": np.array([3e42, 2e43, 8e43, 2e44, 5e44]) * u.erg / u.s,
        "count_rate": np.array([0.5, 0.2, 0.1, 0.05, 0.02]) * u.ct / u.s,
        "count_rate_err": np.array([0.05, 0.03, 0.02, 0.015, 0.01]) * u.ct / u.s,
        "T": np.array([1.5, 3.0, 4.0, 6.0, 8.0]) * u.keV,
        "DET_LIKE": np.array([200.0, 80.0, 40.0, 20.0, 10.0]),
        "EXT_LIKE": np.array([100.0, 40.0, 20.0, 10.0, 7.0]),
    })


def make_distribution(root, dist_name, modules, entry_points, version="0.1"):
    """Create an importable fake installed distribution under ``root``.

    ``modules``: {module file name: source}; ``entry_points``: {ep name: "module[:attr]"}.
    Returns the path to put on sys.path.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for filename, source in modules.items():
        (root / filename).write_text(textwrap.dedent(source))
    info = root / f"{dist_name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[astro_clustermass.estimators]\n{lines}")
    return root


@pytest.fixture
def default_sigint():
    """Python's own Ctrl-C handler while the test runs, whatever the runner inherited.

    A process started as a background job of a non-interactive shell begins with SIGINT
    ignored, and Python then installs no handler: a test of what Ctrl-C does would
    test nothing there. The runner's disposition is restored afterwards.
    """
    import signal

    old = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


@pytest.fixture
def plugin_env(tmp_path, monkeypatch):
    """Factory: install fake plugins on sys.path; returns a fresh Registry builder."""
    import importlib.metadata

    from astro_clustermass.registry import Registry

    roots = []

    def install(dist_name, modules, entry_points, version="0.1"):
        root = make_distribution(tmp_path / dist_name, dist_name, modules, entry_points,
                                 version)
        monkeypatch.syspath_prepend(str(root))
        roots.append(str(root))
        return root

    def registry(**kwargs):
        eps = [ep for dist in importlib.metadata.distributions(path=roots)
               for ep in dist.entry_points if ep.group == "astro_clustermass.estimators"]
        kwargs.setdefault("builtins", False)
        return Registry(entry_points=eps, **kwargs)

    install.registry = registry
    yield install
    for name in list(sys.modules):
        if name.startswith("acm_testplug"):
            del sys.modules[name]
