"""The recipe scan (one validation split) and the ensemble-size table."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_cnn import synthetic_data  # noqa: E402

from astro_clustermass.cnn.scan import SIZE_COLUMNS, ensemble_size_table, format_table, scan_recipes  # noqa: E402


def test_ensemble_size_table_measures_what_members_average_away():
    rng = np.random.default_rng(0)
    n, m = 4000, 20
    truth = rng.uniform(13.5, 15, n)
    # members = truth + independent errors of 0.2 dex, each claiming sigma 0.2
    mu = truth + rng.normal(0, 0.2, (m, n))
    sig = np.full((m, n), 0.2)
    rows = ensemble_size_table(mu, sig, truth, sizes=(1, 5, 20, 40), draws=5)
    assert [r["members"] for r in rows] == [1, 5, 20]  # 40 > 20 members: skipped
    assert rows[-1]["subsets"] == 1 and rows[-1]["scatter_sd"] == 0
    for r in rows:  # the mean of k independent errors: 0.2 / sqrt(k)
        assert r["scatter"] == pytest.approx(0.2 / np.sqrt(r["members"]), rel=0.05)
    # sigma_* = sqrt(0.2^2 + member spread^2) >= 0.2: ever more over-cautious
    assert rows[0]["sigma_over_scatter"] == pytest.approx(1.0, abs=0.05)
    assert rows[2]["sigma_over_scatter"] > 4
    assert rows[2]["cov68"] > 0.99
    # identical members: nothing changes with the size
    same = ensemble_size_table(np.repeat(mu[:1], 10, 0), sig[:10], truth, sizes=(2, 5, 10))
    assert np.ptp([r["scatter"] for r in same]) < 1e-12
    assert "members" in format_table(rows, columns=SIZE_COLUMNS)


def test_scan_uses_one_split_and_reports_every_column(tmp_path):
    data = synthetic_data(120, seed=3)
    recipes = {"base": {}, "drop": {"dropout": 0.3}}
    lines = []
    rows, preds = scan_recipes(data, recipes, str(tmp_path), members=2,
                               base_config={"max_epochs": 2, "batch_size": 40},
                               log=lines.append)
    assert [r["recipe"] for r in rows] == ["base", "drop"] and len(lines) == 2
    n_val = len(preds["truth"])
    assert all(r["n_val"] == n_val for r in rows) and n_val > 0
    for r in rows:
        assert r["parameters"] == 303_942 and r["MFLOP"] == pytest.approx(14.1, abs=0.1)
        assert r["members"] == 2 and r["epochs"] == 2 and r["s_per_epoch"] > 0
        for key in ("scatter", "bias", "bias_13.5-14", "bias_14-14.5", "bias_14.5-15",
                    "sigma_over_scatter", "cov68"):
            assert np.isfinite(r[key]), key
        mu, sig = preds[r["recipe"]]
        assert mu.shape == sig.shape == (2, n_val)
    # same seeds, same split: the recipes differ only by the option
    assert not np.allclose(preds["base"][0], preds["drop"][0])
    again, _ = scan_recipes(data, {"base": {}}, str(tmp_path), members=2,
                            base_config={"max_epochs": 2, "batch_size": 40}, log=lambda s: 0)
    assert again[0]["scatter"] == rows[0]["scatter"]  # resumed from the checkpoints
    table = format_table(rows)
    assert table.count("\n") == 5 and "cov68" in table
