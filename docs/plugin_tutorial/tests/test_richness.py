import numpy as np
import pytest
from acm_richness import plugin
from astropy.table import QTable

import astro_clustermass as acm


def test_masses_from_richness(estimator_registry):
    estimator_registry(plugin)  # a registry holding only this plugin's estimators
    table = QTable({"z": [0.2, 0.4, 0.3], "LAMBDA": [40.0, 80.0, -1.0]})
    out = acm.add_mass_columns(table, estimators=["richness-demo"])
    log_m = out["log10M500c_richness-demo"]  # dex, masked where there is no estimate
    assert log_m.unmasked[0].value == pytest.approx(14.3)
    assert log_m.unmasked[1].value == pytest.approx(14.3 + 1.1 * np.log10(2.0))
    assert log_m.mask[2] and "LAMBDA" in out["M500c_richness-demo_flag"][2]
    assert out.meta["astro_clustermass"]["richness-demo"]["parameters"]["slope"] == 1.1


def test_chosen_automatically_when_the_catalogue_has_richness(estimator_registry):
    estimator_registry(plugin)
    out = acm.add_mass_columns(QTable({"z": [0.2], "lambda_rm": [30.0]}))
    assert "M500c_richness-demo" in out.colnames
