import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable, Table

from astro_clustermass import EstimatorError, MassEstimate, MassEstimator
from astro_clustermass.catalog import ColumnUnitError, MissingColumnError
from astro_clustermass.core import ONE_SIGMA_QUANTILE, write_mass_columns


class ToyLX(MassEstimator):
    """log10 M = log10 LX - 29 (a made-up relation for the interface tests)."""

    name = "toy"
    inputs = ("z", "LX")

    def _estimate(self, catalog):
        n = len(catalog)
        return (np.log10(catalog["LX"].to_value(u.erg / u.s)) - 29.0, np.full(n, 0.1),
                np.ones(n, bool), np.full(n, ""))


def test_columns_and_percentiles(small_catalog):
    out = ToyLX().add_columns(small_catalog)
    mu = np.log10(small_catalog["LX"].value) - 29
    np.testing.assert_allclose(out["log10M500c_toy"].value, mu)
    np.testing.assert_allclose(out["M500c_toy"].to_value(u.Msun), 10 ** mu)
    np.testing.assert_allclose(out["M500c_toy_lo"].to_value(u.Msun), 10 ** (mu - 0.0994457883))
    np.testing.assert_allclose(out["M500c_toy_hi"].to_value(u.Msun), 10 ** (mu + 0.0994457883))
    assert out["log10M500c_toy_err"].unit == u.dex
    assert out["M500c_toy"].unit == u.Msun
    assert list(out["M500c_toy_flag"]) == [""] * 5
    prov = out.meta["astro_clustermass"]["toy"]
    assert prov["name"] == "toy" and "date" in prov and "version" in prov
    assert ONE_SIGMA_QUANTILE == pytest.approx(0.994457883)


def test_input_table_unchanged(small_catalog):
    before = small_catalog.copy()
    ToyLX().add_columns(small_catalog)
    assert small_catalog.colnames == before.colnames
    for name in before.colnames:
        assert np.all(small_catalog[name] == before[name])
    assert small_catalog.meta == before.meta


def test_copy_false_modifies_in_place(small_catalog):
    out = ToyLX().add_columns(small_catalog, copy=False)
    assert out is small_catalog and "M500c_toy" in small_catalog.colnames


def test_bad_rows_masked_with_reason():
    table = QTable({"z": [0.1, np.nan, -0.2, 0.0, 0.3, 0.4],
                    "LX": [1e43, 1e43, 1e43, 1e43, -1e43, 0.0] * u.erg / u.s})
    out = ToyLX().add_columns(table)
    assert not out["M500c_toy"].mask[0]
    assert out["M500c_toy"].mask[1:].all()
    flags = list(out["M500c_toy_flag"])
    assert flags[0] == ""
    assert "z missing" in flags[1]
    assert "z=-0.2 outside" in flags[2] and "z=0 outside" in flags[3]
    assert "LX=-1e+43 outside" in flags[4] and "LX=0 outside" in flags[5]


def test_masked_input_values_are_missing():
    table = Table({"z": np.ma.array([0.1, 0.2], mask=[False, True]), "LX": [1e43, 1e43]})
    table["LX"].unit = "erg/s"
    out = ToyLX().add_columns(table)
    assert list(out["M500c_toy"].mask) == [False, True]


def test_plain_table_gets_masked_columns():
    table = Table({"z": [0.1, 0.2], "Lx_soft": [1e43, 2e43]})  # alias, no unit
    out = ToyLX().add_columns(table)
    assert out["M500c_toy"].unit == u.Msun
    assert type(out) is Table


def test_missing_column_is_a_clear_error():
    with pytest.raises(MissingColumnError, match="lacks required column.*LX"):
        ToyLX().estimate(QTable({"z": [0.1]}))


def test_wrong_unit_names_the_column():
    table = QTable({"z": [0.1], "LX": [1.0] * u.keV})
    with pytest.raises(ColumnUnitError, match="'LX'.*keV.*erg / s"):
        ToyLX().estimate(table)


def test_text_column_is_an_error():
    with pytest.raises(ColumnUnitError, match="not real numbers"):
        ToyLX().estimate(Table({"z": ["a"], "LX": [1e43]}))


def test_empty_table():
    table = QTable({"z": np.zeros(0), "LX": np.zeros(0) * u.erg / u.s})
    out = ToyLX().add_columns(table)
    assert len(out) == 0 and "M500c_toy" in out.colnames


def test_existing_output_column_is_not_overwritten(small_catalog):
    out = ToyLX().add_columns(small_catalog)
    with pytest.raises(EstimatorError, match="already has column"):
        ToyLX().add_columns(out)


class WrongShape(ToyLX):
    name = "wrong"

    def _estimate(self, catalog):
        return np.zeros(1), np.ones(1), np.ones(1, bool), np.array([""])


class ValidButNaN(ToyLX):
    name = "nan"

    def _estimate(self, catalog):
        n = len(catalog)
        return np.full(n, np.nan), np.ones(n), np.ones(n, bool), np.full(n, "")


def test_estimator_contract_violations(small_catalog):
    with pytest.raises(EstimatorError, match="wrong.*shape"):
        WrongShape().estimate(small_catalog)
    with pytest.raises(EstimatorError, match="valid with a non-finite mass"):
        ValidButNaN().estimate(small_catalog)


def test_distribution_matches_gaussian_in_log():
    est = MassEstimate("x", np.array([14.0, 15.0]), np.array([0.2, 0.1]),
                       np.array([True, True]), np.array(["", ""]))
    dist = est.to_distribution(n_samples=20000, seed=1)
    logs = np.log10(dist.distribution.to_value(u.Msun))
    np.testing.assert_allclose(logs.mean(axis=-1), [14.0, 15.0], atol=0.005)
    np.testing.assert_allclose(logs.std(axis=-1), [0.2, 0.1], rtol=0.02)
    np.testing.assert_allclose(est.percentile_mass(84).value, est.mass_hi.value)


def test_mass_estimate_is_read_only():
    est = MassEstimate("x", np.array([14.0]), np.array([0.2]), np.array([True]), np.array([""]))
    with pytest.raises(ValueError):
        est.log10_mass[0] = 1.0


def test_write_mass_columns_checks_length(small_catalog):
    est = MassEstimate("x", np.array([14.0]), np.array([0.2]), np.array([True]), np.array([""]))
    with pytest.raises(EstimatorError, match="1 rows for a table of 5"):
        write_mass_columns(small_catalog, est)


def test_fits_round_trip(tmp_path, small_catalog):
    from astro_clustermass.esass import read_catalog, write_table

    out = ToyLX().add_columns(small_catalog)
    out["z"][0] = 0.1
    path = write_table(out, tmp_path / "masses.fits")
    back = read_catalog(path)
    np.testing.assert_allclose(back["M500c_toy"].to_value(u.Msun), out["M500c_toy"].value)
    assert back.meta["astro_clustermass"]["toy"]["name"] == "toy"


def test_moved_names_still_work_with_a_deprecation_warning():
    """Names moved in 0.2 stay importable from their old place for one release."""
    from astropy.table import QTable
    from astropy.utils.exceptions import AstropyDeprecationWarning

    from astro_clustermass import ebi, parallel
    from astro_clustermass.io import ebi_stack

    with pytest.warns(AstropyDeprecationWarning, match="io.ebi_stack"):
        assert ebi.read_ebi_stack is ebi_stack.read_ebi_stack
    table = QTable({"z": [0.3], "LX": [1e44] * u.erg / u.s})
    with pytest.warns(AstropyDeprecationWarning, match="timeout="):
        out = parallel.add_mass_columns_guarded(table, estimators=["lx-chiu22"])
    assert "M500c_lx-chiu22" in out.colnames
    with pytest.raises(AttributeError):
        ebi.no_such_name
