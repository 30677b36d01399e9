"""Simulator priors (issue 23): the shipped file, seeded per-chunk draws, prior sigmas, and
training sets whose fields are drawn from them (``astro-clustermass dataset --priors``)."""

import dataclasses
import json

import numpy as np
import pytest
import yaml

from astro_clustermass.cnn.priors import PriorError, SimulatorPriors, default_priors_path
from astro_clustermass.simulate import DEFAULT_CONFIG, SimConfig


@pytest.fixture(scope="module")
def priors():
    return SimulatorPriors.read()


def _doc():
    with open(default_priors_path()) as fh:
        return yaml.safe_load(fh)


def test_shipped_priors_fit_the_simulator(priors):
    fields = {f.name: f for f in dataclasses.fields(SimConfig)}
    assert {"hse_bias", "lx_norm", "lx_slope", "rc_median", "cc_fraction"} <= set(priors.names)
    for name, p in priors.priors.items():
        assert isinstance(fields[name].default, float)
        # centred on the simulator's defaults: the shipped ensemble's sky is the centre
        assert p.centre == pytest.approx(getattr(DEFAULT_CONFIG, name), rel=1e-12)
        assert p.source, name
        if p.dist != "uniform":
            assert p.in_support(p.from_n_sigma(-2)) and p.in_support(p.from_n_sigma(2))
    assert priors.validate() == []
    # a configuration off the centre is reported with its prior sigmas
    notes = priors.validate(DEFAULT_CONFIG.replace(hse_bias=0.8))
    assert notes == ["hse_bias: the configuration's 0.8 is +5.50 prior sigma from the "
                     "centre 0.58"]


def test_prior_sigmas_of_the_issue_shifts(priors):
    sig = priors.n_sigma(DEFAULT_CONFIG.replace(hse_bias=0.8, rc_median=0.25))
    assert sig["hse_bias"] == pytest.approx((0.8 - 0.58) / 0.04)
    rc = priors.priors["rc_median"]
    assert sig["rc_median"] == pytest.approx(np.log10(0.25 / rc.centre) / 0.10)
    assert all(v == 0 for k, v in sig.items() if k not in ("hse_bias", "rc_median"))
    assert priors.outside(DEFAULT_CONFIG.replace(hse_bias=0.8)) == {"hse_bias": 0.8}
    assert priors.outside(DEFAULT_CONFIG.replace(rc_median=0.25)) == {}


@pytest.mark.parametrize("change, message", [
    (lambda d: d["parameters"].update(no_such={"dist": "normal", "centre": 1, "sigma": 1,
                                               "bounds": [-5, 5]}),
     "'no_such' is not a simulator parameter"),
    (lambda d: d["parameters"].update(chunk_size={"dist": "normal", "centre": 400, "sigma": 1,
                                                  "bounds": [0, 800]}),
     "'chunk_size' is a int SimConfig field"),
    (lambda d: d["parameters"]["hse_bias"].update(bounds=[0.55, 0.6]),
     "hse_bias: the bounds [0.55, 0.6] cut into the prior's +-2 sigma range"),
    (lambda d: d["parameters"]["hse_bias"].pop("sigma"), "hse_bias: a normal prior needs 'sigma'"),
    (lambda d: d["parameters"]["rc_median"].update(dist="cauchy"), "rc_median: dist must be"),
    (lambda d: d["parameters"]["lx_slope"].update(sigma=0), "lx_slope: the width must be positive"),
    (lambda d: d.update(format="other"), "not an astro_clustermass-simulator-priors file"),
])
def test_bad_priors_files_are_refused_naming_the_parameter(tmp_path, change, message):
    doc = _doc()
    change(doc)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PriorError, match=message.replace("[", r"\[").replace("+", r"\+")):
        SimulatorPriors.read(path)


def test_draws_are_seeded_per_chunk_and_lie_in_the_support(priors):
    a, b = priors.draw(5, 0), priors.draw(5, 1)
    assert a == priors.draw(5, 0)                        # reproducible from (seed, chunk)
    assert all(a[k] != b[k] for k in a)                  # chunks differ in every parameter
    assert all(a[k] != priors.draw(6, 0)[k] for k in a)  # and so do seeds
    draws = [priors.draw(1, k) for k in range(3000)]
    for name, p in priors.priors.items():
        x = p.coordinate([d[name] for d in draws])
        assert np.all((np.asarray([d[name] for d in draws]) >= p.low)
                      & (np.asarray([d[name] for d in draws]) <= p.high))
        # mean and width in the prior's own coordinate (log10 for lognormal priors); the
        # truncations lie beyond 2 sigma, so they move these by less than the tolerance
        assert np.mean(x) == pytest.approx(p.coordinate(p.centre), abs=0.08 * p.sigma)
        assert np.std(x) == pytest.approx(p.sigma, rel=0.08)
    config = priors.apply(DEFAULT_CONFIG, a)
    assert config.hse_bias == a["hse_bias"] and config.H0 == DEFAULT_CONFIG.H0
    with pytest.raises(PriorError, match="without a prior"):
        priors.apply(DEFAULT_CONFIG, {"H0": 70.0})


def test_conditioned_draw_puts_the_combination_at_n_sigma(priors):
    d = priors.draw(3, 4)
    a = {"lx_norm": 1.0, "hse_bias": 1.62 / (np.log(10) * 0.58)}
    for k in (+2.0, -2.0):
        e = priors.conditioned(d, a, k)
        sig = priors.n_sigma(e)
        p = priors.priors
        comb = (sig["lx_norm"] * p["lx_norm"].sigma * a["lx_norm"]
                + sig["hse_bias"] * p["hse_bias"].sigma * a["hse_bias"])
        width = np.hypot(p["lx_norm"].sigma * a["lx_norm"], p["hse_bias"].sigma * a["hse_bias"])
        assert comb / width == pytest.approx(k)
        assert all(e[n] == d[n] for n in d if n not in a)


# -- training sets drawn from the priors -------------------------------------------------

ARGS = ["--chunks", "2", "--area", "1", "--seed", "21", "--no-progress",
        "--set", "log10_mmin=13.3"]


@pytest.fixture(scope="module")
def drawn_set(tmp_path_factory):
    pytest.importorskip("h5py")
    from astro_clustermass.cli import main

    root = tmp_path_factory.mktemp("priorset")
    out, work = str(root / "d.h5"), str(root / "work")
    assert main(["dataset", out, "--work-dir", work, *ARGS, "--priors", "default"]) == 0
    return out, work


def test_each_field_simulates_its_own_draw_recorded_with_every_cluster(drawn_set, priors):
    from astro_clustermass.cnn.dataset import read_dataset
    from astro_clustermass.simulate import read_realisation

    out, work = drawn_set
    data = read_dataset(out)
    cat = data.catalog
    with open(f"{work}/prior_draws.json") as fh:
        record = json.load(fh)
    assert [d["draw"] for d in record["draws"]] == [0, 1]
    assert "simulator priors 'literature-2026-12'" in data.attrs["source"]
    for k in range(2):
        draw = priors.draw(21, k)
        assert record["draws"][k]["values"] == pytest.approx(draw)
        assert record["draws"][k]["n_sigma"] == pytest.approx(priors.n_sigma(draw))
        man = read_realisation(f"{work}/sim/field_{k:03d}").manifest
        assert man["config"]["log10_mmin"] == 13.3          # --set still applies
        rows = np.asarray(cat["realisation"]) == k
        assert rows.any()
        assert np.all(np.asarray(cat["sim_draw"])[rows] == k)
        for name in priors.names:
            assert man["config"][name] == pytest.approx(draw[name])   # reached the simulator
            np.testing.assert_allclose(np.asarray(cat[f"sim_{name}"])[rows], draw[name])
    # the two fields' clusters carry different models
    h = np.asarray(cat["sim_hse_bias"])
    assert len(set(h.tolist())) == 2
    assert not priors.outside({n: float(np.asarray(cat[f"sim_{n}"])[0]) for n in priors.names})


def test_fields_can_share_a_draw(tmp_path):
    pytest.importorskip("h5py")
    from astro_clustermass.cli import main
    from astro_clustermass.cnn.dataset import read_dataset
    from astro_clustermass.simulate import read_realisation

    out, work = str(tmp_path / "d.h5"), str(tmp_path / "work")
    assert main(["dataset", out, "--work-dir", work, *ARGS, "--priors", "default",
                 "--chunks-per-draw", "2"]) == 0
    cfg = [read_realisation(f"{work}/sim/field_{k:03d}").manifest["config"] for k in (0, 1)]
    assert cfg[0]["hse_bias"] == cfg[1]["hse_bias"] == pytest.approx(
        SimulatorPriors.read().draw(21, 0)["hse_bias"])
    with open(f"{work}/prior_draws.json") as fh:
        assert [d["chunks"] for d in json.load(fh)["draws"]] == [[0, 1]]
    cat = read_dataset(out).catalog
    assert set(np.asarray(cat["sim_draw"]).tolist()) == {0}
    assert set(np.asarray(cat["realisation"]).tolist()) == {0, 1}


def test_rerun_with_other_priors_is_refused(drawn_set, tmp_path, capsys):
    import shutil

    from astro_clustermass.cli import main

    out, work = drawn_set
    w2 = str(tmp_path / "work")
    shutil.copytree(work, w2)
    doc = _doc()
    doc["parameters"]["hse_bias"]["sigma"] = 0.05
    other = tmp_path / "p.yaml"
    other.write_text(yaml.safe_dump(doc))
    assert main(["dataset", str(tmp_path / "d.h5"), "--work-dir", w2, *ARGS,
                 "--priors", str(other)]) == 1
    assert "priors.parameters" in capsys.readouterr().err


def test_without_record_the_catalogue_is_unchanged(drawn_set):
    from astro_clustermass.catalog import EFEDS_SELECTION
    from astro_clustermass.cnn.training_set import collect_simulation

    _, work = drawn_set
    _, plain, _, _ = collect_simulation(f"{work}/sim/field_000", EFEDS_SELECTION,
                                        progress=False)
    _, rec, _, _ = collect_simulation(f"{work}/sim/field_000", EFEDS_SELECTION,
                                      progress=False, record=["hse_bias"])
    assert not [c for c in plain.colnames if c.startswith("sim_")]
    assert [c for c in rec.colnames if c not in plain.colnames] == ["sim_hse_bias"]
    with pytest.raises(ValueError, match="does not record the simulator parameter 'nope'"):
        collect_simulation(f"{work}/sim/field_000", EFEDS_SELECTION, progress=False,
                           record=["nope"])


def test_stamps_mode_draws_per_realisation(tmp_path, priors):
    pytest.importorskip("h5py")
    from astro_clustermass.cli import main
    from astro_clustermass.cnn.dataset import read_dataset
    from astro_clustermass.simulate import read_realisation

    out, work = str(tmp_path / "s.h5"), tmp_path / "w"
    assert main(["dataset", out, "--work-dir", str(work), "--mode", "stamps", "--chunks", "2",
                 "--stamps-per-realisation", "30", "--seed", "5", "--no-progress",
                 "--set", "log10_mmin=13.3", "--priors", "default"]) == 0
    cat = read_dataset(out).catalog
    for k in range(2):  # 30 stamps = one chunk per realisation, each its own draw
        man = read_realisation(str(work / "sim" / f"real_{k:03d}")).manifest
        assert man["config"]["rc_median"] == pytest.approx(priors.draw(5, k)["rc_median"])
        rows = np.asarray(cat["realisation"]) == k
        np.testing.assert_allclose(np.asarray(cat["sim_rc_median"])[rows],
                                   priors.draw(5, k)["rc_median"])
        assert np.all(np.asarray(cat["sim_draw"])[rows] == k)
