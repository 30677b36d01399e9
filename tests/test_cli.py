import importlib
import subprocess
import sys

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable

from astro_clustermass import __version__, cli
from astro_clustermass.cli import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert __version__ in capsys.readouterr().out


def test_plugins_lists_estimators(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "name" in out and "status" in out


def test_estimate_round_trip(tmp_path, monkeypatch, capsys):
    from astro_clustermass.core import MassEstimator

    class Toy(MassEstimator):
        name = "toy"
        inputs = ("z",)

        def _estimate(self, catalog):
            n = len(catalog)
            return np.full(n, 14.0), np.full(n, 0.2), np.ones(n, bool), np.full(n, "")

    from astro_clustermass.core import EstimatorSpec

    monkeypatch.setattr("astro_clustermass.api.default_registry",
                        lambda: type("R", (), {"get": staticmethod(lambda name: Toy()),
                                               "spec": staticmethod(
                                                   lambda name: EstimatorSpec("toy", Toy)),
                                               "names": ["toy"]})())
    src = tmp_path / "in.fits"
    QTable({"Z_BEST": [0.1, 0.2], "LX": [1e43, 2e43] * u.erg / u.s}).write(src)
    out = tmp_path / "out.fits"
    assert main(["estimate", str(src), "-o", str(out), "-e", "toy",
                 "--column-map", "z=Z_BEST"]) == 0
    back = QTable.read(out)
    np.testing.assert_allclose(back["M500c_toy"].value, 1e14)
    # refuses to overwrite; the existing file is untouched
    mtime = out.stat().st_mtime_ns
    assert main(["estimate", str(src), "-o", str(out), "-e", "toy",
                 "--column-map", "z=Z_BEST"]) == 1
    assert "exists" in capsys.readouterr().err
    assert out.stat().st_mtime_ns == mtime


def test_estimate_missing_column_message(tmp_path, capsys):
    src = tmp_path / "in.fits"
    QTable({"foo": [1.0]}).write(src)
    rc = main(["estimate", str(src), "-o", str(tmp_path / "o.fits"), "-e", "tx-arnaud07"])
    assert rc == 1
    assert not (tmp_path / "o.fits").exists()


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "astro_clustermass.cli", "--version"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout


@pytest.mark.parametrize("name", sorted(cli.SUBCOMMANDS))
def test_every_subcommand_has_working_help(name, capsys):
    """Every registered subcommand module imports and has the CLI contract."""
    mod = importlib.import_module(f"astro_clustermass.cli.{name.replace('-', '_')}")
    assert callable(mod.add_arguments) and callable(mod.run)
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and name in out


def test_estimate_with_an_ebi_stack(tmp_path, capsys):
    """`estimate --images` feeds an HDF5 EBI stack to the estimators that read images."""
    pytest.importorskip("torch")
    import numpy as np
    from astropy import units as u
    from astropy.table import QTable

    from astro_clustermass.ebi import EBIParameters
    from astro_clustermass.esass import read_catalog
    from astro_clustermass.io.ebi_stack import write_ebi_stack

    rng = np.random.default_rng(1)
    cat = QTable({"RA": [150.0, 150.5, 151.0] * u.deg, "DEC": [2.0, 2.2, 2.4] * u.deg,
                  "z": [0.1, 0.3, 0.6]})
    cat.write(tmp_path / "cat.fits")
    images = rng.poisson(1.0, (3, 50, 50, 10)).astype(np.float32)
    write_ebi_stack(tmp_path / "ebis.h5", images, EBIParameters())
    out = tmp_path / "out.fits"
    assert main(["estimate", str(tmp_path / "cat.fits"), "--images", str(tmp_path / "ebis.h5"),
                 "-o", str(out)]) == 0
    table = read_catalog(out)
    assert np.all(np.isfinite(np.asarray(table["log10M500c_cnn-ensemble"].value)))
    # a stack of another length is refused for that estimator, not silently misaligned
    write_ebi_stack(tmp_path / "short.h5", images[:2], EBIParameters())
    # (the only estimator failed: exit 1 with the reason, nothing written; issue 19)
    capsys.readouterr()
    assert main(["estimate", str(tmp_path / "cat.fits"), "--images", str(tmp_path / "short.h5"),
                 "-o", str(tmp_path / "out2.fits")]) == 1
    err = capsys.readouterr().err
    assert "cnn-ensemble" in err and "2 cubes" in err and "3 rows" in err, err
    assert not (tmp_path / "out2.fits").exists()
    assert main(["estimate", str(tmp_path / "cat.fits"), "--images", str(tmp_path / "ebis.h5"),
                 "-e", "lx-chiu22", "-o", str(tmp_path / "out3.fits")]) == 1
    assert "reads energy-band images" in capsys.readouterr().err
    assert not (tmp_path / "out3.fits").exists()


# ------------------------------------------------------------------ issue 20: defaults
def test_plugins_table_fits_100_columns_and_long_shows_all(capsys):
    assert main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["name", "package"]
    assert max(len(line) for line in lines) <= 100
    assert any(line.startswith("lx-chiu22") for line in lines)
    assert main(["plugins", "--long"]) == 0
    full = capsys.readouterr().out
    assert "Chiu et al. 2022, Eq. 67" in full  # the whole description


def test_estimate_refuses_a_run_in_which_nothing_can_estimate(tmp_path, data_dir, capsys):
    """The real catprep catalogue has no redshift: no estimator can run. The command says
    why for each, writes nothing and exits 1 (it wrote '481 rows with 0 new columns')."""
    from astro_clustermass.utils.exceptions import InputDataWarning

    out = tmp_path / "o.fits"
    with pytest.warns(InputDataWarning, match="covers 0.2-2.2 keV"):
        rc = main(["estimate", str(data_dir / "edr_300003_catprep_SourceCatalog.fits.gz"),
                   "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and not out.exists()
    assert "no estimator can run" in err and "lx-chiu22: the catalogue lacks z, LX" in err


def test_automatic_choice_skips_the_cnn_without_images_or_events(small_catalog):
    import astro_clustermass as acm
    from astro_clustermass.api import automatic_estimators

    table = small_catalog.copy()
    table["RA"], table["DEC"] = np.linspace(10, 11, 5) * u.deg, np.zeros(5) * u.deg
    names = automatic_estimators(table)
    assert "cnn-ensemble" not in names and {"lx-chiu22", "cr-erass1"} <= set(names)
    assert "cnn-ensemble" in automatic_estimators(table, with_events=True)
    from astro_clustermass.utils.exceptions import OutOfRangeWarning

    with pytest.warns(OutOfRangeWarning):
        out = acm.add_mass_columns(table)
    assert not [c for c in out.colnames if "cnn-ensemble" in c]


def test_each_warning_is_printed_once(tmp_path):
    # issue 20: the CLI's own logging handler printed every astropy(-style) warning a
    # second time; a real process, with astropy's logger set up as a user has it
    import os

    src = tmp_path / "in.ecsv"
    QTable({"z": [0.3, 2.5], "LX": [1e44, 2e44] * u.erg / u.s}).write(src)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run([sys.executable, "-m", "astro_clustermass.cli", "estimate", str(src),
                          "-o", str(tmp_path / "out.ecsv"), "-e", "lx-chiu22"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    printed = run.stdout + run.stderr
    assert printed.count("OutOfRangeWarning") == 1, printed
    assert printed.count("outside the calibrated range") == 1, printed
