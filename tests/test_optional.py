"""Optional extras (issue 20): what a core install (``pip install astro_clustermass``,
no extras) can do, and the message naming the extra for what it cannot.

The tests run in a fresh interpreter in which the packages of the extras cannot be
imported (``sys.modules[name] = None``: ``import torch`` raises ModuleNotFoundError, as
when torch is not installed), whatever this machine has installed.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from astro_clustermass.utils.optional import (
    EXTRAS,
    MissingDependencyError,
    from_import_error,
    require,
)

#: Run in a core install: the packages of every extra are missing.
PRELUDE = textwrap.dedent(f"""
    import os, sys
    for name in {sorted(EXTRAS)!r}:
        sys.modules[name] = None
    os.environ.pop("OMP_WAIT_POLICY", None)
""")


def _core_python(code, tmp_path):
    """Run ``code`` after `PRELUDE` in a new interpreter; its stdout, stripped."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout.strip()


def test_relations_need_no_extra(tmp_path):
    out = _core_python("""
        import json, warnings
        import astropy.units as u
        from astropy.table import QTable
        import astro_clustermass as acm

        t = QTable({"z": [0.2, 0.4], "LX": [1e44, 3e44] * u.erg / u.s,
                    "count_rate": [0.5, 0.2] * u.ct / u.s})
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            one = acm.add_mass_columns(t, estimators=["lx-chiu22"])
            both = acm.add_mass_columns(t)  # the automatic choice: both relations
        heavy = sorted(m for m in sys.modules if m.partition(".")[0] in
                       ("torch", "dask", "distributed", "matplotlib", "colossus", "h5py",
                        "safetensors") and sys.modules[m] is not None)
        print(json.dumps({"mass": float(one["log10M500c_lx-chiu22"][0].value),
                          "columns": [c for c in both.colnames if c.startswith("M500c_")
                                      and c.endswith("_flag")],
                          "heavy": heavy, "omp": os.environ.get("OMP_WAIT_POLICY")}))
    """, tmp_path)
    result = json.loads(out.splitlines()[-1])
    assert 14.0 < result["mass"] < 15.5
    assert result["columns"] == ["M500c_cr-erass1_flag", "M500c_lx-chiu22_flag"]
    assert result["heavy"] == [] and result["omp"] is None


def test_the_cnn_ensemble_names_its_extra(tmp_path):
    # images in a column: the CNN is chosen, and says which extra it needs
    out = _core_python("""
        import numpy as np
        from astropy.table import QTable
        import astro_clustermass as acm
        from astro_clustermass.utils.exceptions import EstimatorError

        t = QTable({"z": [0.2, 0.4], "RA": [10.0, 10.5], "DEC": [-5.0, -5.0],
                    "ebi": np.ones((2, 50, 50, 10), np.float32)})
        try:
            acm.add_mass_columns(t, estimators=["cnn-ensemble"], on_error="raise")
        except EstimatorError as exc:
            print(exc)
    """, tmp_path)
    assert "MissingDependencyError: the CNN ensemble needs torch" in out
    assert "pip install 'astro_clustermass[cnn]'" in out


@pytest.mark.parametrize("command, extra", [
    ("simulate -o sky --mode field --area 1", "sim"),
    ("dataset data.h5 --work-dir work --chunks 1", "sim"),
    ("train -o ensemble data.h5", "cnn"),
    ("evaluate-ensemble data.h5", "cnn"),
    ("ebi cat.ecsv --events events.fits -o ebis.h5", "cnn"),
    ("run cat.ecsv -o out.ecsv -e lx-chiu22", "dask"),
    ("demo", "all"),
])
def test_commands_name_their_extra(tmp_path, command, extra):
    # a catalogue for the commands that read one before they need the extra
    out = _core_python(f"""
        import contextlib, io
        from astropy.table import QTable
        from astro_clustermass.cli import main

        QTable({{"z": [0.2], "LX": [1e44], "RA": [10.0], "DEC": [-5.0]}}).write("cat.ecsv")
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            status = main({command.split()!r})
        print(status, err.getvalue())
    """, tmp_path)
    status, _, message = out.partition(" ")
    assert status == "1", out
    assert "MissingDependencyError" in message, out
    assert f"pip install 'astro_clustermass[{extra}]'" in message, out


def test_require_and_the_command_lines_safety_net():
    assert require("numpy").__name__ == "numpy"
    with pytest.raises(MissingDependencyError, match=r"astro_clustermass\[cnn\]"):
        require("no_such_module_acm", extra="cnn", feature="a test")
    # an optional package imported without require: the command line still names the extra
    exc = ModuleNotFoundError("No module named 'torch'", name="torch")
    named = from_import_error(exc, "astro-clustermass train")
    assert isinstance(named, MissingDependencyError)
    assert str(named) == ("astro-clustermass train needs torch, which is not installed: "
                          "python -m pip install 'astro_clustermass[cnn]'")
    assert from_import_error(ModuleNotFoundError("x", name="yaml")) is None  # not an extra
    assert from_import_error(ValueError("torch")) is None
