import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import QTable, Table

import astro_clustermass as acm
from astro_clustermass.core import EstimatorError
from astro_clustermass.registry import (
    DuplicateEstimatorError,
    PluginError,
    Registry,
    UnknownEstimatorError,
    default_registry,
)
from astro_clustermass.utils.exceptions import PluginWarning

GOOD = """
import numpy as np
from astro_clustermass import EstimatorSpec, MassEstimator, hookimpl

class Const(MassEstimator):
    name = "{name}"
    inputs = ("z",)
    def __init__(self, value=14.0):
        self.value = value
    def _estimate(self, catalog):
        n = len(catalog)
        return np.full(n, self.value), np.full(n, 0.3), np.ones(n, bool), np.full(n, "")

@hookimpl
def astro_clustermass_estimators():
    return [EstimatorSpec("{name}", Const, ("z",), "constant mass")]
"""

TABLE = QTable({"z": [0.1, 0.2, 0.3]})


def test_good_plugin_is_listed_and_used(plugin_env):
    plugin_env("acm-testplug-good", {"acm_testplug_good.py": GOOD.format(name="const")},
               {"const": "acm_testplug_good"})
    registry = plugin_env.registry()
    assert "const" in registry.names
    record = [p for p in registry.plugins if p.name == "const"][0]
    assert record.status == "ok" and record.distribution == "acm-testplug-good"
    est = registry.get("const", value=13.5)
    np.testing.assert_allclose(est.estimate(TABLE).log10_mass, 13.5)


def test_plugin_raising_on_import_is_isolated(plugin_env):
    plugin_env("acm-testplug-good", {"acm_testplug_good.py": GOOD.format(name="const")},
               {"const": "acm_testplug_good"})
    plugin_env("acm-testplug-broken", {"acm_testplug_broken.py": "raise ImportError('boom')\n"},
               {"broken": "acm_testplug_broken"})
    with pytest.warns(PluginWarning, match="'broken' from acm-testplug-broken failed.*boom"):
        registry = plugin_env.registry()
    assert "const" in registry.names
    broken = [p for p in registry.plugins if p.name == "broken"][0]
    assert broken.status == "error" and "boom" in broken.error
    table = registry.table()
    assert any("broken" in s and "boom" in s for s in table["status"])
    with pytest.raises(PluginError, match="broken.*acm-testplug-broken.*boom"):
        plugin_env.registry(strict=True)


def test_plugin_returning_nonsense(plugin_env):
    source = ("from astro_clustermass import hookimpl\n"
              "@hookimpl\ndef astro_clustermass_estimators():\n    return [42]\n")
    plugin_env("acm-testplug-bad", {"acm_testplug_bad.py": source}, {"bad": "acm_testplug_bad"})
    with pytest.warns(PluginWarning, match="expected EstimatorSpec"):
        registry = plugin_env.registry()
    record = [p for p in registry.plugins if p.name == "bad"][0]
    assert record.status == "error" and "expected EstimatorSpec" in record.error


def test_unmarked_hook_is_reported(plugin_env):
    source = "def astro_clustermass_estimators():\n    return []\n"
    plugin_env("acm-testplug-unmarked", {"acm_testplug_unmarked.py": source},
               {"unmarked": "acm_testplug_unmarked"})
    with pytest.warns(PluginWarning, match="hookimpl"):
        record = [p for p in plugin_env.registry().plugins if p.name == "unmarked"][0]
    assert record.status == "error" and "hookimpl" in record.error


def test_blocked_plugin_is_not_imported(plugin_env, monkeypatch):
    plugin_env("acm-testplug-broken", {"acm_testplug_broken.py": "raise ImportError('boom')\n"},
               {"broken": "acm_testplug_broken"})
    monkeypatch.setenv("ASTRO_CLUSTERMASS_DISABLE_PLUGINS", "acm-testplug-broken")
    registry = plugin_env.registry()
    record = [p for p in registry.plugins if p.name == "broken"][0]
    assert record.status == "blocked"
    assert "acm_testplug_broken" not in sys.modules
    monkeypatch.setenv("ASTRO_CLUSTERMASS_STRICT_PLUGINS", "1")
    plugin_env.registry()  # blocked plugins do not trip strict mode


def test_duplicate_names_are_an_error(plugin_env):
    plugin_env("acm-testplug-a", {"acm_testplug_a.py": GOOD.format(name="same")},
               {"a": "acm_testplug_a"})
    plugin_env("acm-testplug-b", {"acm_testplug_b.py": GOOD.format(name="same")},
               {"b": "acm_testplug_b"})
    with pytest.warns(PluginWarning, match="'same' is registered by several packages"):
        registry = plugin_env.registry()
    with pytest.raises(DuplicateEstimatorError, match="acm-testplug-a.*acm-testplug-b"):
        registry.get("same")
    assert list(registry.table()["status"][:2]) == ["duplicate name"] * 2
    with pytest.raises(DuplicateEstimatorError):
        plugin_env.registry(strict=True)


def test_plugin_estimator_with_wrong_shape_is_masked(plugin_env, monkeypatch):
    source = GOOD.format(name="short").replace("n = len(catalog)", "n = len(catalog) - 1")
    plugin_env("acm-testplug-short", {"acm_testplug_short.py": source},
               {"short": "acm_testplug_short"})
    registry = plugin_env.registry()
    monkeypatch.setattr("astro_clustermass.api.default_registry", lambda: registry)
    before = TABLE.copy()
    with pytest.warns(acm.utils.exceptions.AstroClusterMassUserWarning,
                      match="'short' failed; its columns are masked"):
        out = acm.add_mass_columns(TABLE, estimators=["short"])
    assert out["M500c_short"].mask.all()
    assert all("estimator failed" in f and "shape" in f for f in out["M500c_short_flag"])
    with pytest.raises(acm.EstimatorError, match="short"):
        acm.add_mass_columns(TABLE, estimators=["short"], on_error="raise")
    assert TABLE.colnames == before.colnames and np.all(TABLE["z"] == before["z"])


def test_a_plugin_cannot_take_a_builtin_name(plugin_env):
    # issue 20: the built-in estimator keeps its name, the plugin's is refused, loudly
    plugin_env("acm-testplug-shadow", {"acm_testplug_shadow.py": GOOD.format(name="lx-chiu22")},
               {"shadow": "acm_testplug_shadow"})
    with pytest.warns(PluginWarning, match="'lx-chiu22', the name of a built-in estimator"):
        registry = plugin_env.registry(builtins=True)
    assert registry.spec("lx-chiu22").package == "astro_clustermass"
    listed = registry.table()
    refused = [r for r in listed if r["package"] == "acm-testplug-shadow"]
    assert len(refused) == 1 and refused[0]["status"].startswith("refused")
    with pytest.raises(DuplicateEstimatorError, match="built-in"):
        plugin_env.registry(builtins=True, strict=True)


def test_undeclared_input_is_reported(plugin_env):
    source = GOOD.format(name="undeclared").replace('inputs = ("z",)', 'inputs = ("z", "LX")')
    plugin_env("acm-testplug-undeclared", {"acm_testplug_undeclared.py": source},
               {"undeclared": "acm_testplug_undeclared"})
    with pytest.warns(PluginWarning, match=r"needs \['LX'\], which its EstimatorSpec does not"):
        plugin_env.registry().get("undeclared")


def test_unknown_estimator_lists_the_available_ones():
    with pytest.raises(UnknownEstimatorError, match="no estimator named 'nope'"):
        Registry(entry_points=[]).get("nope")


def test_listing_does_not_import_torch():
    code = ("import sys, astro_clustermass as a; a.list_estimators(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parent, check=True)
    assert out.stdout.strip() == "False"


def test_example_plugin_installs_and_is_used(tmp_path, monkeypatch):
    """pip-install plugins/astro_clustermass_txm into a target dir and use it."""
    src = Path(__file__).parents[1] / "plugins" / "astro_clustermass_txm"
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(target), str(src)],
                   check=True, capture_output=True)
    monkeypatch.syspath_prepend(str(target))
    try:
        registry = default_registry(refresh=True)
        assert "tx-arnaud07" in registry.names
        listed = acm.list_estimators()
        row = listed[list(listed["name"]).index("tx-arnaud07")]
        assert row["package"] == "astro_clustermass_txm" and row["status"] == "ok"
        table = QTable({"z": [0.05], "kT": [5.0]})
        out = acm.add_mass_columns(table, estimators=["tx-arnaud07"])
        # Arnaud et al. 2007: h(z) M500 = 10^14.580 Msun at 5 keV (h70 = 1).
        from astropy.cosmology import FlatLambdaCDM
        ez = FlatLambdaCDM(H0=70, Om0=0.3).efunc(0.05)
        value = out["log10M500c_tx-arnaud07"].unmasked[0].value
        assert value == pytest.approx(14.580 - np.log10(ez))
    finally:
        monkeypatch.undo()
        default_registry(refresh=True)
        for name in [m for m in sys.modules if m.startswith("astro_clustermass_txm")]:
            del sys.modules[name]


def test_unbuildable_estimator_skipped_only_when_not_requested(plugin_env, monkeypatch):
    source = GOOD.format(name="nobuild").replace(
        "self.value = value", "raise RuntimeError('no weights here')")
    plugin_env("acm-testplug-nobuild", {"acm_testplug_nobuild.py": source},
               {"nobuild": "acm_testplug_nobuild"})
    registry = plugin_env.registry()
    monkeypatch.setattr("astro_clustermass.api.default_registry", lambda: registry)
    # nothing else can run: the error says why for each (issue 20: no silent empty run)
    with pytest.warns(PluginWarning, match="'nobuild': it could not be built.*no weights"), \
            pytest.raises(EstimatorError, match="no estimator can run.*nobuild: it could not"):
        acm.add_mass_columns(TABLE)
    plugin_env("acm-testplug-good", {"acm_testplug_good.py": GOOD.format(name="good")},
               {"good": "acm_testplug_good"})
    registry = plugin_env.registry()
    with pytest.warns(PluginWarning, match="'nobuild': it could not be built.*no weights"):
        out = acm.add_mass_columns(TABLE)  # all that can run: skipped, with a warning
    assert "M500c_nobuild" not in out.colnames and "M500c_good" in out.colnames
    # asked for: its rows are masked with the reason (issue 19: a broken plugin never
    # stops the others), or the error names it with on_error="raise"
    with pytest.warns(acm.utils.exceptions.AstroClusterMassUserWarning, match="'nobuild' fail"):
        out = acm.add_mass_columns(TABLE, estimators=["nobuild"])
    assert out["M500c_nobuild"].mask.all()
    assert all("no weights here" in f for f in out["M500c_nobuild_flag"])
    with pytest.raises(EstimatorError, match="nobuild.*no weights here"):
        acm.add_mass_columns(TABLE, estimators=["nobuild"], on_error="raise")


PHOTONS = """
import numpy as np
from astro_clustermass import EstimatorSpec, MassEstimator, hookimpl

class Photons(MassEstimator):
    name = "photons"
    inputs = ("z",)
    def __init__(self, events=None):
        self.events = events
    def _estimate(self, catalog):
        n = len(catalog)
        ok = np.full(n, self.events is not None)
        photons = 0 if self.events is None else len(self.events.ra)
        return (np.full(n, 13.0 + photons), np.full(n, 0.2), ok,
                np.where(ok, "", "no events given"))

@hookimpl
def astro_clustermass_estimators():
    return [EstimatorSpec("photons", Photons, ("z",), "reads events")]
"""


def test_events_go_to_estimators_that_take_them(plugin_env, monkeypatch, tmp_path):
    plugin_env("acm-testplug-photons", {"acm_testplug_photons.py": PHOTONS},
               {"photons": "acm_testplug_photons"})
    plugin_env("acm-testplug-good", {"acm_testplug_good.py": GOOD.format(name="good")},
               {"good": "acm_testplug_good"})
    registry = plugin_env.registry()
    monkeypatch.setattr("astro_clustermass.api.default_registry", lambda: registry)
    assert registry.spec("photons").accepts("events")
    assert not registry.spec("good").accepts("events")
    files = []
    for k, (ra, pi) in enumerate([(10.0, 1000.0), (10.1, -5.0), (10.2, 1500.0)]):
        files.append(str(tmp_path / f"ev{k}.fits"))
        Table({"RA": [ra], "DEC": [0.0], "PI": [pi]}).write(files[-1], format="fits")
    # by name, and chosen automatically: the photon reader gets the photons of the files
    # as one EventList (quality cuts applied: PI <= 0 is dropped, so 2 photons), the
    # other estimator is built as usual (it would raise TypeError on an unknown keyword)
    for chosen in (["photons", "good"], None):
        with pytest.warns(acm.utils.exceptions.InputDataWarning, match="no TIME column"):
            out = acm.add_mass_columns(TABLE, estimators=chosen, events=files)
        assert np.allclose(out["log10M500c_photons"].value, 15.0)
        assert np.allclose(out["log10M500c_good"].value, 14.0)
    out = acm.add_mass_columns(TABLE, estimators=["photons"])
    assert out["M500c_photons"].mask.all()
    assert out["M500c_photons_flag"][0] == "no events given"
