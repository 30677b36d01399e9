"""The plugin tutorial (docs/plugin_tutorial.rst) as a user runs it: build and install the
tutorial's package, run its own tests (which use the fixture astro_clustermass ships),
and use its estimator through the installed entry point."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import QTable

import astro_clustermass as acm
from astro_clustermass.registry import default_registry

ROOT = Path(__file__).parents[1]
TUTORIAL = ROOT / "docs" / "plugin_tutorial"


@pytest.fixture
def installed_tutorial(tmp_path, monkeypatch):
    """The tutorial package, pip-installed into a folder on sys.path (no build isolation:
    no index needed), and a copy of its sources (with its tests)."""
    source = tmp_path / "acm-richness"
    shutil.copytree(TUTORIAL, source)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(site), str(source)],
                   check=True, capture_output=True)
    monkeypatch.syspath_prepend(str(site))
    yield source, site
    monkeypatch.undo()
    default_registry(refresh=True)
    for name in [m for m in sys.modules if m.startswith("acm_richness")]:
        del sys.modules[name]


def test_tutorial_plugin_passes_its_own_tests(installed_tutorial):
    source, site = installed_tutorial
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                         cwd=source, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
    # the tutorial's "astro-clustermass plugins" after the install lists it
    run = subprocess.run([sys.executable, "-m", "astro_clustermass.cli", "plugins"],
                         cwd=source, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    row = [line.split() for line in run.stdout.splitlines() if "richness-demo" in line]
    assert row and row[0][:3] == ["richness-demo", "acm-richness", "0.1.0"], run.stdout


def test_tutorial_plugin_is_found_and_used(installed_tutorial):
    registry = default_registry(refresh=True)
    assert "richness-demo" in registry.names
    listed = acm.list_estimators()
    row = listed[list(listed["name"]).index("richness-demo")]
    assert row["package"] == "acm-richness" and row["status"] == "ok"
    table = QTable({"z": [0.3, 0.5], "LAMBDA": [40.0, 10.0]})
    out = acm.add_mass_columns(table, estimators=["richness-demo"])
    assert np.allclose(out["log10M500c_richness-demo"].value,
                       [14.3, 14.3 + 1.1 * np.log10(0.25)])
    assert list(out["M500c_richness-demo_flag"]) == ["", "richness below 20: extrapolated"]
