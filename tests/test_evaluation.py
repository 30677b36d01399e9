"""Tests of astro_clustermass.evaluation: metrics, report, CLI (no torch needed)."""

import argparse
import os
import subprocess
import sys

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable, Table
from astropy.utils.masked import Masked
from scipy.special import ndtr

from astro_clustermass.core import MassEstimate, write_mass_columns
from astro_clustermass.evaluation import evaluate, find_estimators, residual_metrics
from astro_clustermass.evaluation.metrics import coverage_curve, selection_mask


def _row(table, estimator, selection="all", binning="all", lo=None):
    m = ((np.asarray(table["estimator"]) == estimator)
         & (np.asarray(table["selection"]) == selection)
         & (np.asarray(table["binning"]) == binning))
    if lo is not None:
        m &= np.isclose(np.asarray(table["bin_lo"]), lo)
    assert m.sum() == 1, (estimator, selection, binning, lo)
    return table[m][0]


def _v(x):
    """Value of a possibly masked quantity cell; None if masked."""
    if bool(np.any(getattr(x, "mask", False))):
        return None
    return float(getattr(getattr(x, "unmasked", x), "value", x))


def _hand_table():
    # d = [0.1, -0.1, 0.2, 0.0], sigma = [0.1, 0.1, 0.1, 0.3]
    t = QTable()
    t["M500c"] = np.full(4, 1e14) * u.Msun
    t["z"] = [0.1, 0.3, 0.5, 0.7]
    t["log10M500c_toy"] = [14.1, 13.9, 14.2, 14.0] * u.dex
    t["log10M500c_toy_err"] = [0.1, 0.1, 0.1, 0.3] * u.dex
    return t


def test_hand_computed_values():
    t = _hand_table()
    r = _row(evaluate(t, selections={"all": ""}), "toy")
    assert r["n"] == 4 and r["n_no_estimate"] == 0
    assert _v(r["bias"]) == pytest.approx(0.05)
    assert _v(r["median"]) == pytest.approx(0.05)
    assert _v(r["scatter"]) == pytest.approx(np.sqrt(0.05 / 3))
    assert _v(r["scatter_err"]) == pytest.approx(np.sqrt(0.05 / 3) / np.sqrt(6))
    assert _v(r["bias_err"]) == pytest.approx(np.sqrt(0.05 / 3) / 2)
    assert _v(r["scatter_nmad"]) == pytest.approx(1.4826 * 0.1)
    assert _v(r["mean_sigma"]) == pytest.approx(0.15)
    assert _v(r["pull_std"]) == pytest.approx(np.sqrt(5 / 3))
    # 68%: |d| < 0.9945 sigma only for the last row; 95%: |d| < 1.96 sigma for 3 rows
    assert _v(r["coverage68"]) == pytest.approx(0.25)
    assert _v(r["coverage95"]) == pytest.approx(0.75)
    # PIT = Phi(-d/sigma) = 0.841, 0.159, 0.023, 0.5
    assert list(r["pit"]) == [1, 1, 0, 0, 0, 1, 0, 0, 1, 0]
    assert r["scatter"].unit == u.dex


def test_table_units_meta_and_input_untouched():
    t = _hand_table()
    before = t.copy()
    res = evaluate(t)
    assert isinstance(res, QTable)
    for key in ("bias", "scatter", "scatter_nmad", "mean_sigma"):
        assert res[key].unit == u.dex
    meta = res.meta["astro_clustermass_evaluation"]
    assert "1.4826" in meta["robust_scatter"]
    assert meta["true_mass_column"] == "M500c"
    assert all(np.all(t[c] == before[c]) for c in t.colnames)
    assert t.colnames == before.colnames


def _gaussian_table(n=20000, bias=0.05, scatter=0.2, sigma_pred=0.2, seed=3):
    rng = np.random.default_rng(seed)
    lt = rng.uniform(13.3, 15.2, n)
    t = QTable()
    t["M500c"] = 10 ** lt * u.Msun
    t["z"] = rng.uniform(0.05, 1.2, n)
    t["EXT_LIKE"] = rng.uniform(0, 120, n)
    t["DET_LIKE"] = rng.uniform(0, 120, n)
    t["log10M500c_g"] = (lt + rng.normal(bias, scatter, n)) * u.dex
    t["log10M500c_g_err"] = np.full(n, sigma_pred) * u.dex
    return t


def test_gaussian_draws_known_scatter_and_coverage():
    res = evaluate(_gaussian_table())
    r = _row(res, "g")
    n = r["n"]
    assert n == 20000
    assert _v(r["bias"]) == pytest.approx(0.05, abs=5 * 0.2 / np.sqrt(n))
    assert _v(r["scatter"]) == pytest.approx(0.2, abs=5 * 0.2 / np.sqrt(2 * n))
    assert _v(r["scatter_nmad"]) == pytest.approx(0.2, abs=0.01)
    # the truth lies within mu +- 0.9945 sigma of a N(mu + b, s) draw with prob:
    z68 = 0.99446
    exp68 = ndtr((z68 * 0.2 - 0.05) / 0.2) - ndtr((-z68 * 0.2 - 0.05) / 0.2)
    exp95 = ndtr((1.96 * 0.2 - 0.05) / 0.2) - ndtr((-1.96 * 0.2 - 0.05) / 0.2)
    tol = 5 * np.sqrt(0.25 / n)
    assert _v(r["coverage68"]) == pytest.approx(exp68, abs=tol)
    assert _v(r["coverage95"]) == pytest.approx(exp95, abs=tol)
    # selections: the cuts are applied (counts match a direct count)
    t = _gaussian_table()
    hq = (t["EXT_LIKE"] > 60) & (t["DET_LIKE"] > 60)
    assert _row(res, "g", "EXT_LIKE>60 & DET_LIKE>60")["n"] == hq.sum()
    # mass bins partition the rows
    mb = res[(np.asarray(res["binning"]) == "log10M") & (np.asarray(res["selection"]) == "all")]
    assert mb["n"].sum() == n


def test_unbiased_calibrated_gives_nominal_coverage_and_flat_pit():
    r = _row(evaluate(_gaussian_table(bias=0.0), selections={"all": ""}), "g")
    n = r["n"]
    assert _v(r["coverage68"]) == pytest.approx(0.68, abs=5 * np.sqrt(0.68 * 0.32 / n))
    assert _v(r["coverage95"]) == pytest.approx(0.95, abs=5 * np.sqrt(0.95 * 0.05 / n))
    assert _v(r["pull_std"]) == pytest.approx(1.0, abs=0.03)
    pit = np.asarray(r["pit"])
    assert pit.sum() == n
    assert np.all(np.abs(pit - n / 10) < 5 * np.sqrt(n / 10))


def test_overconfident_sigma_under_covers():
    r = _row(evaluate(_gaussian_table(bias=0.0, sigma_pred=0.1), selections={"all": ""}), "g")
    expected = 2 * ndtr(0.99446 * 0.1 / 0.2) - 1  # about 0.38
    assert _v(r["coverage68"]) == pytest.approx(expected, abs=0.02)
    assert _v(r["pull_std"]) == pytest.approx(2.0, abs=0.05)
    pit = np.asarray(r["pit"])
    assert pit[0] > 2 * pit[5] and pit[-1] > 2 * pit[5]  # U-shaped


def test_coverage_curve():
    rng = np.random.default_rng(0)
    d = rng.normal(0, 0.2, 50000)
    p, obs = coverage_curve(d, np.full(d.size, 0.2))
    assert np.allclose(obs, p, atol=0.01)
    p, obs = coverage_curve(np.array([]), np.array([]))
    assert np.all(np.isnan(obs))


def test_masked_rows_excluded_and_counted():
    t = _hand_table()
    t["log10M500c_toy"] = Masked(t["log10M500c_toy"], mask=[False, True, False, False])
    r = _row(evaluate(t, selections={"all": ""}), "toy")
    assert r["n"] == 3 and r["n_no_estimate"] == 1
    assert _v(r["bias"]) == pytest.approx((0.1 + 0.2 + 0.0) / 3)
    # NaN sigma or sigma <= 0 counts as no estimate, too
    t = _hand_table()
    t["log10M500c_toy_err"] = [0.1, np.nan, 0.1, 0.0] * u.dex
    r = _row(evaluate(t, selections={"all": ""}), "toy")
    assert r["n"] == 2 and r["n_no_estimate"] == 2


def test_all_masked_estimator():
    t = _hand_table()
    t["log10M500c_toy"] = Masked(t["log10M500c_toy"], mask=np.ones(4, bool))
    r = _row(evaluate(t, selections={"all": ""}), "toy")
    assert r["n"] == 0 and r["n_no_estimate"] == 4
    for key in ("bias", "scatter", "scatter_nmad", "mean_sigma", "coverage68"):
        assert _v(r[key]) is None
    assert np.all(np.asarray(r["pit"]) == 0)


def test_empty_and_single_row_bins():
    t = _hand_table()
    res = evaluate(t, selections={"all": ""}, mass_bins=[12.0, 13.0, 14.0, 15.0],
                   z_bins=[0.0, 0.2, 1.0])
    empty = _row(res, "toy", binning="log10M", lo=12.0)
    assert empty["n"] == 0 and _v(empty["bias"]) is None and _v(empty["scatter"]) is None
    full = _row(res, "toy", binning="log10M", lo=14.0)  # all four have log10 M = 14
    assert full["n"] == 4
    one = _row(res, "toy", binning="z", lo=0.0)
    assert one["n"] == 1
    assert _v(one["bias"]) == pytest.approx(0.1)
    assert _v(one["scatter"]) is None  # undefined for one row
    with pytest.raises(ValueError, match="mass_bins"):
        evaluate(t, mass_bins=[14.0, 13.0])


def test_missing_selection_columns_skipped_with_note(caplog):
    t = _hand_table()  # no EXT_LIKE / DET_LIKE
    res = evaluate(t)
    assert set(res["selection"]) == {"all"}
    notes = res.meta["astro_clustermass_evaluation"]["notes"]
    assert any("EXT_LIKE>6 & DET_LIKE>5" in n and "EXT_LIKE" in n and "skipped" in n
               for n in notes)
    assert "skipped" in caplog.text


def test_selection_aliases_masks_and_errors():
    t = _hand_table()
    t["DET_LIKE_0"] = [10.0, 3.0, 10.0, 10.0]
    t["ext_like"] = [10.0, 10.0, 2.0, 10.0]
    m = selection_mask(t, "EXT_LIKE > 6 & DET_LIKE > 5")
    assert m.tolist() == [True, False, False, True]
    res = evaluate(t, selections={"cut": "EXT_LIKE > 6 & DET_LIKE > 5",
                                  "mask": np.array([True, True, False, False])})
    assert _row(res, "toy", "cut")["n"] == 2
    assert _v(_row(res, "toy", "mask")["bias"]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="cannot parse"):
        selection_mask(t, "EXT_LIKE >> 6")
    with pytest.raises(ValueError, match="shape"):
        selection_mask(t, np.ones(3, bool))


def test_estimator_detection_and_errors():
    t = _hand_table()
    t["M500c_pc"] = 10 ** np.array([14.1, 13.9, 14.2, 14.0]) * u.Msun
    t["M500c_pc_lo"] = 10 ** (np.array([14.1, 13.9, 14.2, 14.0]) - 0.99446 * 0.2) * u.Msun
    t["M500c_pc_hi"] = 10 ** (np.array([14.1, 13.9, 14.2, 14.0]) + 0.99446 * 0.2) * u.Msun
    t["log10M500c_orphan"] = np.ones(4) * u.dex  # no _err column: not an estimator
    names = [e.name for e in find_estimators(t)]
    assert names == ["toy", "pc"]
    res = evaluate(t, selections={"all": ""})
    assert _v(_row(res, "pc")["mean_sigma"]) == pytest.approx(0.2, rel=1e-4)
    assert _v(_row(res, "pc")["bias"]) == pytest.approx(0.05)
    with pytest.raises(KeyError, match="nope"):
        evaluate(t, estimators=["nope"])
    with pytest.raises(KeyError, match="no estimator columns"):
        evaluate(QTable({"M500c": [1e14] * u.Msun}))


def test_true_mass_units_aliases_and_errors():
    t = _hand_table()
    kg = t.copy()
    kg["M500c"] = kg["M500c"].to(u.kg)
    assert _v(_row(evaluate(kg), "toy")["bias"]) == pytest.approx(0.05)
    alias = Table(t)
    alias.rename_column("M500c", "m500_true")
    assert _v(_row(evaluate(alias), "toy")["bias"]) == pytest.approx(0.05)
    dex = t.copy()
    dex["logM"] = np.full(4, 14.0) * u.dex
    assert _v(_row(evaluate(dex, true_mass="logM"), "toy")["bias"]) == pytest.approx(0.05)
    nounit = Table(t)
    nounit["logM"] = np.full(4, 14.0)
    with pytest.raises(ValueError, match="log10"):
        evaluate(nounit, true_mass="logM")
    plain = Table(t)
    plain["M500c"] = np.full(4, 1e14)  # no unit: Msun assumed
    assert _v(_row(evaluate(plain), "toy")["bias"]) == pytest.approx(0.05)
    with pytest.raises(KeyError, match="true-mass column 'Mwl'"):
        evaluate(t, true_mass="Mwl")
    bad = t.copy()
    bad["M500c"] = [1e14, -1.0, np.nan, 1e14] * u.Msun
    res = evaluate(bad, selections={"all": ""})
    assert _row(res, "toy")["n"] == 2
    assert any("true mass" in n for n in res.meta["astro_clustermass_evaluation"]["notes"])


def test_columns_written_by_the_core_are_evaluated():
    n = 200
    rng = np.random.default_rng(5)
    lt = rng.uniform(13.5, 15.0, n)
    cat = QTable({"M500c": 10 ** lt * u.Msun, "z": rng.uniform(0.1, 0.9, n)})
    valid = rng.random(n) > 0.2
    est = MassEstimate("core-toy", lt + 0.1, np.full(n, 0.15), valid,
                       np.where(valid, "", "no input"), meta={"version": "9"})
    out = write_mass_columns(cat, est)
    res = evaluate(out, selections={"all": ""})
    r = _row(res, "core-toy")
    assert r["n"] == valid.sum() and r["n_no_estimate"] == n - valid.sum()
    assert _v(r["bias"]) == pytest.approx(0.1)
    assert _v(r["scatter"]) == pytest.approx(0.0, abs=1e-9)
    prov = res.meta["astro_clustermass_evaluation"]["estimator_provenance"]
    assert prov["core-toy"]["version"] == "9"
    # a plain Table round trip (e.g. from FITS/ECSV) gives the same numbers
    assert _v(_row(evaluate(Table(out), selections={"all": ""}), "core-toy")["bias"]) == \
        pytest.approx(0.1)


def test_residual_metrics_ignores_nonfinite():
    m = residual_metrics([14, 14, np.nan], [14.1, np.inf, 14.0], [0.1, 0.1, 0.1])
    assert m["n"] == 1 and m["bias"] == pytest.approx(0.1) and np.isnan(m["scatter"])


def test_metrics_table_round_trips_ecsv(tmp_path):
    res = evaluate(_hand_table())
    path = tmp_path / "m.ecsv"
    res.write(path)
    back = QTable.read(path)
    assert back["scatter"].unit == u.dex
    assert back.meta["astro_clustermass_evaluation"]["robust_scatter"].startswith("scatter_nmad")


# -- report ---------------------------------------------------------------------------
def _small_two_estimators(n=300):
    t = _gaussian_table(n=n, seed=11)
    rng = np.random.default_rng(12)
    lt = np.log10(t["M500c"].to_value(u.Msun))
    t["log10M500c_h"] = Masked((lt + rng.normal(0, 0.3, n)) * u.dex, mask=rng.random(n) < 0.1)
    t["log10M500c_h_err"] = np.full(n, 0.25) * u.dex
    return t


def test_html_report_is_self_contained(tmp_path):
    from astro_clustermass.evaluation import write_report

    path = tmp_path / "sub" / "report.html"
    res = write_report(str(path), _small_two_estimators())
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("data:image/png;base64,") >= 5
    assert "src='http" not in text and 'src="http' not in text
    for name in ("g", "h", "EXT_LIKE&gt;60 &amp; DET_LIKE&gt;60", "scatter"):
        assert name in text
    assert isinstance(res, QTable)
    assert sorted(os.listdir(path.parent)) == ["report.html"]  # no temp files left
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)


def test_failed_report_leaves_no_file(tmp_path, monkeypatch):
    from astro_clustermass.evaluation import plots, write_report

    def boom(*a, **k):
        raise RuntimeError("render failed")

    monkeypatch.setattr(plots, "figure_to_png", boom)
    path = tmp_path / "report.html"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="render failed"):
        write_report(str(path), _small_two_estimators())
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["report.html"]


def test_pdf_report(tmp_path):
    from astro_clustermass.evaluation import write_report

    path = tmp_path / "report.pdf"
    write_report(str(path), _small_two_estimators(), selections={"all": ""})
    assert path.read_bytes()[:5] == b"%PDF-"


def test_every_axis_is_labelled():
    from astro_clustermass.evaluation import plots
    from astro_clustermass.evaluation.metrics import collect
    from astro_clustermass.evaluation.report import report_figures

    t = _small_two_estimators()
    res = evaluate(t)
    figs = report_figures(res, collect(t))
    cubes = np.random.default_rng(0).random((2, 50, 50, 10))
    figs.append(("bands", plots.plot_band_images(cubes, ["a", "b"],
                                                 np.linspace(0.25, 2.3, 11))))
    grad = {"mean_gradient": cubes, "mean_abs_gradient": np.abs(cubes), "bins": [(13, 14),
            (14, 15)], "n": [3, 4]}
    figs.append(("grad", plots.plot_gradient_maps(grad, band_edges_keV=np.linspace(0.25, 2.3, 11))))
    for caption, fig in figs:
        for ax in fig.axes:
            if not ax.axison or ax.get_label() == "<colorbar>":
                continue
            if len(ax.get_shared_x_axes().get_siblings(ax)) > 1 and not ax.get_xlabel():
                assert ax.get_ylabel(), caption  # a twin axis: x label on its sibling
                continue
            if ax.images and not (ax.get_xlabel() and ax.get_ylabel()):
                continue  # inner panels of image grids share the outer labels (below)
            assert ax.get_xlabel() and ax.get_ylabel(), caption
        images = [ax for ax in fig.axes if ax.images]
        if images:
            assert any("arcsec" in ax.get_xlabel() for ax in images), caption
            assert any("arcsec" in ax.get_ylabel() for ax in images), caption


def test_format_summary_rst():
    from astro_clustermass.evaluation.report import format_summary

    text = format_summary(evaluate(_hand_table()), fmt="rst")
    lines = text.splitlines()
    assert lines[0].startswith("=====") and "toy" in text and "+0.050+-0.065" in text


# -- CLI ------------------------------------------------------------------------------
def _parse(argv):
    from astro_clustermass.cli import evaluate as cli

    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    return cli, p.parse_args(argv)


def test_cli_writes_report_and_table(tmp_path, capsys):
    cat = tmp_path / "cat.ecsv"
    _small_two_estimators().write(cat)
    out, tab = tmp_path / "r.html", tmp_path / "m.ecsv"
    cli, args = _parse([str(cat), "-o", str(out), "--table", str(tab), "--estimators", "g",
                        "--selection", "hq=EXT_LIKE > 60 & DET_LIKE > 60",
                        "--mass-bins", "13,14,15.5", "--no-figures"])
    assert cli.run(args) == 0
    printed = capsys.readouterr().out
    assert "hq" in printed and "g " in printed
    table = QTable.read(tab)
    assert set(table["estimator"]) == {"g"} and set(table["selection"]) == {"hq"}
    assert out.exists()
    with pytest.raises(FileExistsError):
        cli.run(args)
    fits_table = tmp_path / "m.fits"
    cli, args = _parse([str(cat), "-o", str(out), "--table", str(fits_table), "--no-figures",
                        "--overwrite"])
    assert cli.run(args) == 0
    import json

    back = QTable.read(fits_table)
    assert json.loads(back.meta["ACM_EVAL"])["robust_scatter"].startswith("scatter_nmad")
    assert back["scatter"].unit == u.dex


def test_cli_main_dispatch(tmp_path):
    from astro_clustermass import cli as main_cli

    cat = tmp_path / "cat.ecsv"
    _hand_table().write(cat)
    assert main_cli.main(["evaluate", str(cat), "-o", str(tmp_path / "r.html"),
                          "--no-figures"]) == 0


def test_import_is_light():
    code = ("import sys, astro_clustermass.evaluation as e, astro_clustermass.cli.evaluate, "
            "astro_clustermass.cnn.interpret; "
            "print('torch' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.stdout.split() == ["False", "False"]


def test_compare_estimators_benchmark_without_cnn(tmp_path, capsys, benchmark_script):
    """The benchmark script runs end to end on a tiny data set (relations only)."""
    from astro_clustermass.cnn.dataset import write_dataset

    rng = np.random.default_rng(7)
    n = 80
    lt = rng.uniform(13.5, 15.0, n)
    cat = Table({"cluster_id": np.arange(n), "realisation": np.zeros(n, int),
                 "M500c": 10 ** lt, "z": rng.uniform(0.1, 0.8, n),
                 "LX": 10 ** (43 + 1.4 * (lt - 14.1)), "ML_RATE": 10 ** (-1 + 1.3 * (lt - 14.3)),
                 "ML_RATE_ERR": np.full(n, 0.01), "EXT_LIKE": rng.uniform(7, 100, n),
                 "DET_LIKE": rng.uniform(6, 100, n)})
    cat["M500c"].unit = u.Msun
    cat["LX"].unit = u.erg / u.s
    cat["ML_RATE"].unit = cat["ML_RATE_ERR"].unit = u.ct / u.s
    path = tmp_path / "ds.h5"
    write_dataset(str(path), np.zeros((n, 4, 4, 2), np.float32), cat)
    mod = benchmark_script("compare_estimators")
    out = tmp_path / "out"
    assert mod.main([str(path), "--no-cnn", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lx-chiu22" in printed and "cr-erass1" in printed
    assert {"comparison.html", "metrics.ecsv", "comparison.rst"} <= set(os.listdir(out))
    metrics = QTable.read(out / "metrics.ecsv")
    row = metrics[(metrics["estimator"] == "lx-chiu22") & (metrics["binning"] == "all")
                  & (metrics["selection"] == "all")][0]
    assert row["n"] == 12  # the 15% test split of 80 clusters


def test_compare_estimators_r500_from_true_mass(benchmark_script):
    """Without R500_arcsec, the benchmark takes R500c from the true M500c and z."""
    from astropy.cosmology import FlatLambdaCDM

    mod = benchmark_script("compare_estimators")
    cat = Table({"M500c": [1e14, 5e14] * u.Msun, "z": [0.1, 0.5]})
    got = mod._r500_pix(cat, 24.0)
    # independent: 500 rho_c(z) (4 pi / 3) R^3 = M, seed-000 cosmology, small angle
    cosmo = FlatLambdaCDM(H0=67.74, Om0=0.3089, Ob0=0.048206)
    rho = cosmo.critical_density(cat["z"]).to(u.Msun / u.Mpc ** 3)
    r500 = (3 * cat["M500c"] / (4 * np.pi * 500 * rho)) ** (1 / 3)
    theta = (r500 / cosmo.angular_diameter_distance(cat["z"])).to(u.arcsec,
                                                                   u.dimensionless_angles())
    np.testing.assert_allclose(got, theta.value / 24.0, rtol=1e-3)
    cat["R500_arcsec"] = [240.0, 120.0]
    np.testing.assert_allclose(mod._r500_pix(cat, 24.0), [10.0, 5.0])
    assert mod._r500_pix(Table({"z": [0.1]}), 24.0) is None


def test_format_binned():
    from astro_clustermass.evaluation.report import format_binned

    res = evaluate(_hand_table(), mass_bins=[13.5, 14.0, 14.5])
    text = format_binned(res, "all", "log10M", "bias")
    lines = text.splitlines()
    assert lines[1].split() == ["log10", "M_true", "toy"]
    assert lines[3].split() == ["13.5-14", "--", "(0)"]
    assert lines[4].split() == ["14-14.5", "+0.050+-0.065", "(4)"]


def test_non_numeric_columns_are_named():
    t = Table(_hand_table())
    t["log10M500c_toy_err"] = ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="log10M500c_toy_err"):
        evaluate(t)
    t = Table(_hand_table())
    t["EXT_LIKE"] = ["x"] * 4
    with pytest.raises(ValueError, match="EXT_LIKE"):
        evaluate(t, selections={"cut": "EXT_LIKE > 6"})
