import gzip
import logging
import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable

import astro_clustermass as acm
from astro_clustermass.catalog import ColumnUnitError
from astro_clustermass.esass import CatalogReadError, column_band, read_catalog, write_table
from astro_clustermass.utils.exceptions import InputDataWarning, OutOfRangeWarning

ERMLDET = "edr_300003_ermldet_MaxLikSourceList.fits.gz"
CATPREP = "edr_300003_catprep_SourceCatalog.fits.gz"


def read_real(path, **kwargs):
    """read_catalog of a real file: neither holds 0.2-2.3 keV, so count_rate comes from
    other bands, with an InputDataWarning that says which."""
    with pytest.warns(InputDataWarning, match=r"count_rate taken from .* covers") as record:
        table = read_catalog(path, **kwargs)
    read_real.text = " ".join(str(w.message) for w in record)
    return table


def test_ermldet_flattened_to_one_row_per_source(data_dir):
    table = read_real(data_dir / ERMLDET)
    assert len(table) == 481  # 2886 rows = 481 sources x (summary + 5 inst/band rows)
    assert table.meta["esass_layout"] == "ermldet"
    assert table.meta["bands"][1] == [0.2, 0.5] and table.meta["bands"][4] == [2.2, 10.0]
    assert table["ML_RATE"].unit == u.ct / u.s
    assert "ML_RATE_3" in table.colnames and "ID_BAND" not in table.colnames
    # the summary rate is the sum of the band rates (eSASS ID_BAND=0 convention)
    total = sum(table[f"ML_RATE_{b}"] for b in (1, 2, 3, 4))
    np.testing.assert_allclose(total.value, table["ML_RATE"].value, rtol=1e-4)


def test_catprep_units_repaired_and_bands_read(data_dir, caplog):
    with caplog.at_level(logging.INFO):
        table = read_real(data_dir / CATPREP)
    assert len(table) == 481
    assert table.meta["esass_layout"] == "catprep"
    # catprep writes 'arcsec' on likelihoods; they must come back as plain numbers
    assert not isinstance(table["EXT_LIKE"], u.Quantity) or table["EXT_LIKE"].unit in (
        None, u.dimensionless_unscaled)
    assert "DET_LIKE_0 [arcsec]" in caplog.text
    # no 0.2-2.3 keV band in this field: bands 1-3 (0.2-2.2 keV) summed, with a warning
    assert table["count_rate"].info.meta["from_columns"] == ["ML_RATE_1", "ML_RATE_2",
                                                             "ML_RATE_3"]
    assert "covers 0.2-2.2 keV, not the canonical 0.2-2.3 keV (summed without" in read_real.text


def test_both_layouts_agree_on_rates(data_dir):
    a = read_real(data_dir / ERMLDET, rate_band=(1, 2, 3))
    b = read_real(data_dir / CATPREP, rate_band=(1, 2, 3))
    assert "covers 0.2-2.2 keV, not the canonical" in read_real.text
    by_id = {sid: i for i, sid in enumerate(b["ID_SRC"])}
    idx = [by_id[s] for s in a["ID_SRC"]]
    np.testing.assert_allclose(a["count_rate"].value, b["count_rate"].value[idx], rtol=1e-5)


# ------------------------------------------------ which band feeds cr-erass1 (issue 17)
def _with_z(table):
    table = table.copy()
    table["z"] = 0.3
    return table


def test_ermldet_rate_is_0p2_to_2p2_kev_not_the_0p2_to_10_kev_summary(data_dir):
    table = read_real(data_dir / ERMLDET)
    assert "covers 0.2-2.2 keV" in read_real.text and "0.9945 times" in read_real.text
    bands = sum(table[f"ML_RATE_{b}"].value for b in (1, 2, 3))
    np.testing.assert_allclose(table["count_rate"].value, bands)
    ratio = table["count_rate"].value / table["ML_RATE"].value  # band 0: 0.2-10 keV
    assert np.all(ratio < 1 + 1e-5) and np.median(ratio) < 0.95
    assert column_band(table, "ML_RATE") == (0.2, 10.0)
    assert column_band(table, "count_rate") == (0.2, 2.2)
    with pytest.warns(OutOfRangeWarning, match="cr-erass1: .* outside the calibrated range"):
        out = acm.add_mass_columns(_with_z(table), estimators=["cr-erass1"])
    read = {e["canonical"]: e for e in out.meta["astro_clustermass"]["cr-erass1"]["columns_read"]}
    assert read["count_rate"] == {"canonical": "count_rate", "column": "count_rate",
                                  "unit": "ct / s", "band": "0.2-2.2 keV"}
    assert read["count_rate_err"]["band"] == "0.2-2.2 keV"


def test_cr_erass1_refuses_the_0p2_to_10_kev_rate_it_was_not_asked_for(data_dir):
    table = _with_z(read_real(data_dir / ERMLDET))
    table.remove_columns(["count_rate", "count_rate_err"])  # as if no bands made 0.2-2.3
    with pytest.raises(ColumnUnitError, match=r"'ML_RATE' \(count_rate\) holds 0.2-10 keV.*"
                                              r"rate_band="):
        acm.add_mass_columns(table, estimators=["cr-erass1"])
    # estimators chosen automatically: the same refusal, never a silent 0.2-10 keV mass
    with pytest.raises(ColumnUnitError, match="rate_band="):
        acm.add_mass_columns(table)


def assert_asked_for_and_out_of_range(record):
    """One warning says the band was used because it was asked for, another that rows lie
    outside the calibration (one pytest.warns for both: pytest < 8 does not pass a
    warning on from an inner pytest.warns to an outer one)."""
    texts = {w.category: str(w.message) for w in record}
    assert "used because it was asked for" in texts[InputDataWarning]
    assert "outside the calibrated range" in texts[OutOfRangeWarning]


def test_a_band_asked_for_is_used_with_a_warning_and_recorded(data_dir):
    table = _with_z(read_real(data_dir / ERMLDET))
    with pytest.warns((InputDataWarning, OutOfRangeWarning)) as record:
        out = acm.add_mass_columns(table, estimators=["cr-erass1"],
                                   column_map={"count_rate": "ML_RATE",
                                               "count_rate_err": "ML_RATE_ERR"})
    assert_asked_for_and_out_of_range(record)
    read = {e["canonical"]: e for e in out.meta["astro_clustermass"]["cr-erass1"]["columns_read"]}
    assert read["count_rate"]["band"].startswith("0.2-10 keV (asked for")
    assert read["count_rate_err"]["band"].startswith("0.2-10 keV (asked for")
    # the rate of one band with the error of another: refused, naming column_map
    with pytest.raises(ColumnUnitError, match="not of the band of count_rate.*column_map"), \
            pytest.warns(InputDataWarning, match="asked for"):
        acm.add_mass_columns(table, estimators=["cr-erass1"], column_map={"count_rate": "ML_RATE"})
    with pytest.warns(OutOfRangeWarning):
        summed = acm.add_mass_columns(table, estimators=["cr-erass1"])
    diff = (out["log10M500c_cr-erass1"].value - summed["log10M500c_cr-erass1"].value).filled(0)
    assert np.all(diff > -1e-6) and np.median(diff) > 0.02  # wider band: more counts
    # rate_band= of read_catalog is asking too
    wide = _with_z(read_real(data_dir / ERMLDET, rate_band=0))
    with pytest.warns((InputDataWarning, OutOfRangeWarning)) as record:
        out = acm.add_mass_columns(wide, estimators=["cr-erass1"])
    assert_asked_for_and_out_of_range(record)
    read = out.meta["astro_clustermass"]["cr-erass1"]["columns_read"]
    assert "0.2-10 keV (asked for" in read[1]["band"]


def test_an_unflattened_ermldet_list_is_refused(data_dir):
    from astropy.table import Table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)
        raw = Table.read(data_dir / ERMLDET, hdu="SRCLIST")
    raw["z"] = 0.3
    with pytest.raises(ColumnUnitError, match="ID_BAND.*read_catalog"):
        acm.add_mass_columns(raw, estimators=["cr-erass1"])


def test_unknown_band_is_an_error(data_dir):
    with pytest.raises(CatalogReadError, match="ML_RATE_9"):
        read_catalog(data_dir / CATPREP, rate_band=9)


@pytest.mark.parametrize("content",
                         [b"", b"SIMPLE  =                    T", b"not a fits file" * 10])
def test_corrupt_files_give_clear_errors(tmp_path, content):
    path = tmp_path / "bad.fits"
    path.write_bytes(content)
    with pytest.raises(CatalogReadError, match="bad.fits"):
        read_catalog(path)


def test_truncated_file(tmp_path, data_dir):
    raw = gzip.decompress((data_dir / CATPREP).read_bytes())
    path = tmp_path / "truncated.fits"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CatalogReadError, match="truncated.fits"):
        read_catalog(path)


def test_missing_file():
    with pytest.raises(CatalogReadError, match="does not exist"):
        read_catalog("/nonexistent/clusters.fits")


def test_write_is_atomic_and_refuses_overwrite(tmp_path):
    table = QTable({"z": [0.1, 0.2]})
    path = write_table(table, tmp_path / "out.fits")
    with pytest.raises(FileExistsError):
        write_table(table, path)

    class Boom(Exception):
        pass

    class BadTable(QTable):
        def write(self, *args, **kwargs):
            with open(args[0], "wb") as fh:
                fh.write(b"half")
            raise Boom()

    before = path.read_bytes()
    with pytest.raises(Boom):
        write_table(BadTable({"z": [1.0]}), path, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.fits"]
