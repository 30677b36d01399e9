"""Sigma split into statistical and model (calibration) parts (issue 23): the extra columns
of `MassEstimate`, `split_sigma`, manifests with per-member prior draws, and the
``cnn-ensemble-marginalised`` estimator (unavailable while no weights are shipped)."""

import numpy as np
import pytest
from astropy.table import QTable, Table

from astro_clustermass.core import EstimatorError, MassEstimate, write_mass_columns


# -- MassEstimate.extra (no torch) -------------------------------------------------------
@pytest.mark.parametrize("kind", [Table, QTable])
def test_extra_per_row_values_become_masked_dex_columns(kind):
    est = MassEstimate("toy", [14.0, 14.5, np.nan], [0.2, 0.3, np.nan], [True, True, False],
                       ["", "", "no image"],
                       meta={"extra_descriptions": {"err_stat": "statistical part"}},
                       extra={"err_stat": [0.1, 0.2, 0.9], "err_model": [0.05, 0.1, 0.9]})
    assert np.isnan(est.extra["err_stat"][2])                  # masked row: NaN
    with pytest.raises(ValueError):
        est.extra["err_stat"][0] = 1.0                           # frozen
    out = write_mass_columns(kind({"z": [0.1, 0.2, 0.3]}), est)
    col = out["log10M500c_toy_err_stat"]
    assert str(col.unit) == "dex" and list(col.mask) == [False, False, True]
    np.testing.assert_allclose(np.asarray(getattr(col, "value", col))[:2], [0.1, 0.2])
    assert col.info.description == "statistical part"
    assert out.colnames[-1] == "M500c_toy_flag"
    with pytest.raises(EstimatorError, match="already has column"):
        write_mass_columns(out, est)


def test_extra_of_the_wrong_shape_or_name_is_refused():
    with pytest.raises(EstimatorError, match="extra column 'err_stat'"):
        MassEstimate("toy", [14.0, 14.1], [0.2, 0.2], [True, True], ["", ""],
                     extra={"err_stat": [0.1]})
    with pytest.raises(EstimatorError, match="extra column 'err stat'"):
        MassEstimate("toy", [14.0], [0.2], [True], [""], extra={"err stat": [0.1]})
    # without extra nothing changes: the usual six columns
    out = write_mass_columns(Table({"z": [0.1]}),
                             MassEstimate("toy", [14.0], [0.2], [True], [""]))
    assert [c for c in out.colnames if c.startswith("log10")] == ["log10M500c_toy",
                                                                   "log10M500c_toy_err"]


# -- split_sigma and the manifest ---------------------------------------------------------
torch = pytest.importorskip("torch")

from astro_clustermass.cnn.ensemble import combine  # noqa: E402
from astro_clustermass.cnn.estimator import (  # noqa: E402
    CNNEnsembleEstimator,
    CNNMarginalisedEstimator,
    split_sigma,
)
from astro_clustermass.cnn.io import (  # noqa: E402
    ManifestError,
    default_weights_dir,
    member_draw_ids,
    read_manifest,
    save_ensemble,
)
from astro_clustermass.utils.exceptions import EstimatorUnavailable  # noqa: E402


def test_split_is_an_exact_decomposition_of_the_ensemble_sigma():
    rng = np.random.default_rng(0)
    mu = rng.normal(14, 0.1, (6, 50))
    sig = rng.uniform(0.1, 0.2, (6, 50))
    _, total = combine(mu, sig)
    for ids in ([0, 0, 1, 1, 2, 2], [0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 0, 1]):
        stat, model = split_sigma(mu, sig, ids)
        np.testing.assert_allclose(np.hypot(stat, model), total, rtol=1e-12)
        assert np.all(model > 0)
    # one draw for all members: no model part, all of sigma is statistical
    stat, model = split_sigma(mu, sig, [7] * 6)
    assert np.all(model == 0) and np.allclose(stat, total)
    # two draws whose members agree within each draw: the draws' spread is the model part
    mu2 = np.array([[14.0], [14.0], [14.2], [14.2]])
    stat, model = split_sigma(mu2, np.full((4, 1), 0.15), [0, 0, 1, 1])
    assert model[0] == pytest.approx(0.1) and stat[0] == pytest.approx(0.15)
    with pytest.raises(ValueError, match="3 draw ids for 4 members"):
        split_sigma(mu2, np.full((4, 1), 0.15), [0, 0, 1])


def _random_ensemble(path, draw_ids):
    """Untrained seed-000 members saved with the shipped manifest's normalisation and EBI
    parameters, each recording a prior draw (or none)."""
    from astro_clustermass.cnn.model import build_model

    base = read_manifest(default_weights_dir())
    models = []
    for i in range(len(draw_ids)):
        torch.manual_seed(100 + i)
        models.append(build_model("seed000")[0].eval())
    members = [{"seed": 100 + i} if g is None else
               {"seed": 100 + i, "prior_draw": {"id": g, "values": {"hse_bias": 0.5 + 0.05 * g}}}
               for i, g in enumerate(draw_ids)]
    manifest = {k: base[k] for k in ("name", "architecture", "input", "normalisation",
                                     "ebi_parameters", "dataset")}
    manifest.update(name="test-marginalised", members=members,
                    marginalisation={"priors_name": "literature-2026-12",
                                     "method": "members trained on prior draws"})
    save_ensemble(str(path), models, manifest)
    return str(path)


@pytest.fixture(scope="module")
def marginalised(tmp_path_factory):
    return _random_ensemble(tmp_path_factory.mktemp("marg") / "ens", [0, 0, 1, 2])


def _images(n=5, seed=3):
    return np.random.default_rng(seed).poisson(0.5, (n, 50, 50, 10)).astype(np.float32)


def test_marginalised_ensemble_writes_both_parts(marginalised):
    assert member_draw_ids(read_manifest(marginalised)) == [0, 0, 1, 2]
    table = QTable({"z": [0.1, 0.2, 0.3, 0.4, 0.5]})
    images = _images()
    images[1] = np.nan
    est = CNNMarginalisedEstimator(weights=marginalised, images=images)
    out = est.add_columns(table)
    name = "log10M500c_cnn-ensemble-marginalised"
    stat, model, total = (np.ma.filled(out[f"{name}_{k}"].value, np.nan)
                          for k in ("err_stat", "err_model", "err"))
    ok = np.isfinite(total)
    assert list(ok) == [True, False, True, True, True]
    np.testing.assert_allclose(np.hypot(stat[ok], model[ok]), total[ok], rtol=1e-10)
    assert np.all(model[ok] > 0) and np.all(stat[ok] > 0)
    mu, sig = est.last_members
    np.testing.assert_allclose(model[ok], split_sigma(mu, sig, [0, 0, 1, 2])[1][ok])
    prov = out.meta["astro_clustermass"]["cnn-ensemble-marginalised"]
    assert "across 3 simulator-prior draws" in prov["sigma_model"]
    assert "does not average down" in out[f"{name}_err_model"].info.description


def test_shipped_ensemble_has_no_model_part_and_says_so():
    table = QTable({"z": [0.2, 0.3]})
    out = CNNEnsembleEstimator(images=_images(2)).add_columns(table)
    assert not [c for c in out.colnames if c.endswith(("_err_stat", "_err_model"))]
    prov = out.meta["astro_clustermass"]["cnn-ensemble"]["sigma_model"]
    assert prov.startswith("not estimated (0)") and "issue 23" in prov


def test_marginalised_name_needs_prior_draws_and_is_unavailable_without_weights(tmp_path):
    from astro_clustermass.cnn import builtin_estimator_specs
    from astro_clustermass.cnn.io import MANIFEST, marginalised_weights_dir
    from astro_clustermass.registry import default_registry

    with pytest.raises(ManifestError, match="not a calibration-marginalised ensemble"):
        CNNMarginalisedEstimator(weights=default_weights_dir())
    spec = {s.name: s for s in builtin_estimator_specs()}["cnn-ensemble-marginalised"]
    import os

    if os.path.exists(os.path.join(marginalised_weights_dir(), MANIFEST)):
        pytest.skip("a marginalised ensemble is shipped")
    assert spec.description.startswith("UNAVAILABLE: no calibration-marginalised weights")
    assert spec.unavailable.startswith("no calibration-marginalised weights")
    listed = default_registry().table()
    status = dict(zip(listed["name"], listed["status"]))
    assert status["cnn-ensemble-marginalised"] == "unavailable"
    assert status["cnn-ensemble"] == status["lx-chiu22"] == "ok"
    with pytest.raises(EstimatorUnavailable, match="no calibration-marginalised weights are "
                                                   "shipped yet"):
        spec.load()
    # the commands that hand images/photons to every estimator taking them skip it ...
    assert not spec.accepts("events") and not spec.accepts("images")
    # ... and the class itself takes them, as cnn-ensemble (for when weights ship)
    import inspect

    assert {"events", "images"} <= set(inspect.signature(CNNMarginalisedEstimator).parameters)
    # "run all that can": it is skipped with its reason, the others run
    from astro_clustermass import add_mass_columns

    table = QTable({"z": [0.2], "RA": [10.0], "DEC": [1.0], "LX": [1e44]})
    table["LX"].unit = "erg/s"
    table["RA"].unit = table["DEC"].unit = "deg"
    out = add_mass_columns(table)
    assert not [c for c in out.colnames if "marginalised" in c]
    assert "M500c_lx-chiu22" in out.colnames


def test_unavailable_factory_takes_weights_of_a_marginalised_ensemble(marginalised):
    from astro_clustermass.cnn import builtin_estimator_specs

    spec = {s.name: s for s in builtin_estimator_specs()}["cnn-ensemble-marginalised"]
    est = spec.load(weights=marginalised, images=_images(2))
    assert isinstance(est, CNNMarginalisedEstimator)
    assert set(est.estimate(QTable({"z": [0.2, 0.3]})).extra) == {"err_stat", "err_model"}


def test_manifest_with_prior_draws_on_some_members_only_is_refused(tmp_path):
    path = _random_ensemble(tmp_path / "ens", [0, None])
    with pytest.raises(ManifestError, match="member 1: prior_draw must be a mapping"):
        read_manifest(path)


def test_train_marginalised_trains_each_member_on_its_draw(tmp_path):
    from astro_clustermass.cnn.dataset import read_dataset, write_dataset
    from astro_clustermass.cnn.marginalise import train_marginalised
    from astro_clustermass.cnn.train import TrainConfig

    rng = np.random.default_rng(5)
    n = 160
    logm = rng.uniform(13.5, 15.0, n)
    draw = np.repeat([0, 1], n // 2)
    hse = np.where(draw == 0, 0.55, 0.65)
    yy, xx = np.mgrid[:50, :50] - 24.5
    blob = np.exp(-(xx ** 2 + yy ** 2) / 18.0)[..., None] * np.ones(10)
    # the same mass looks brighter in draw 1 (a larger 1 - b)
    amp = 10 ** (1.2 * (logm - 14.0)) * 3.0 * (hse / 0.6) ** 1.6
    ebi = rng.poisson(0.05 + amp[:, None, None, None] * blob).astype(np.float32)
    cat = Table({"M500c": 10 ** logm, "z": rng.uniform(0.1, 0.8, n),
                 "DET_LIKE": np.full(n, 50.0), "EXT_LIKE": np.full(n, 50.0),
                 "cluster_id": np.arange(n), "realisation": draw, "sim_draw": draw,
                 "sim_hse_bias": hse})
    cat["M500c"].unit = "Msun"
    path = tmp_path / "d.h5"
    write_dataset(path, ebi, cat, ebi_parameters=read_manifest(default_weights_dir())[
        "ebi_parameters"], selection="", source="synthetic, two prior draws")
    data = read_dataset(str(path))
    man = train_marginalised(data, str(tmp_path / "ens"), str(tmp_path / "work"),
                             config=TrainConfig(max_epochs=2), selection="", progress=False)
    assert [m["prior_draw"]["id"] for m in man["members"]] == [0, 1]
    assert [m["prior_draw"]["values"]["hse_bias"] for m in man["members"]] == \
        pytest.approx([0.55, 0.65])
    # each member saw only its draw's training clusters
    assert sum(m["prior_draw"]["n_train"] for m in man["members"]) == man["dataset"]["n_train"]
    est = CNNMarginalisedEstimator(weights=str(tmp_path / "ens"), images=ebi[:10])
    res = est.estimate(Table({"z": np.asarray(cat["z"][:10])}))
    assert set(res.extra) == {"err_stat", "err_model"} and np.all(res.extra["err_model"] > 0)
    with pytest.raises(ValueError, match="no 'sim_draw' column"):
        cat.remove_column("sim_draw")
        write_dataset(tmp_path / "e.h5", ebi, cat, ebi_parameters=data.ebi_parameters)
        train_marginalised(read_dataset(str(tmp_path / "e.h5")), str(tmp_path / "x"),
                           str(tmp_path / "w"), selection="")
