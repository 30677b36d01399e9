"""Regression tests of issue 19: the package's promises against hostile inputs and plugins.

Each test is one case that broke a promise (no traceback reaches a CLI user, a broken
plugin never stops the others, inputs are never modified, no partial outputs, concurrent
runs refused or correct, per-row reasons), kept with the input that broke it.
"""

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable, Table

import astro_clustermass as acm
from astro_clustermass.cli import main as cli_main


def _lines(text):
    return [line for line in text.splitlines() if line.strip()]


def _catalog_file(path, **columns):
    columns = columns or {"z": [0.1, 0.3], "LX": [1e43, 1e44] * u.erg / u.s}
    QTable(columns).write(path)
    return path


# -- no traceback reaches a CLI user ---------------------------------------------------------
@pytest.mark.parametrize("columns, word", [
    ({"z": [0.1, 0.3], "LX": [1.0, 2.0] * u.keV}, "LX"),
    ({"z": np.array(["0.1", "0.3"]), "LX": [1e43, 1e44] * u.erg / u.s}, "z"),
])
def test_column_unit_errors_are_one_line(tmp_path, capsys, columns, word):
    src = _catalog_file(tmp_path / "in.fits", **columns)
    rc = cli_main(["estimate", str(src), "-o", str(tmp_path / "out.fits")])
    err = capsys.readouterr().err
    assert rc == 1 and len(_lines(err)) == 1 and word in err, err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fits"]


def test_unreadable_catalogue_is_one_line(tmp_path, capsys):
    src = tmp_path / "catalog.dat"
    src.write_text("this is not a table\n\x00\x01\x02")
    rc = cli_main(["estimate", str(src), "-o", str(tmp_path / "out.fits")])
    err = capsys.readouterr().err
    assert rc == 1 and len(_lines(err)) == 1 and "catalog.dat" in err, err
