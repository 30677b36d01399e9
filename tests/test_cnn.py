"""Tests of the CNN ensemble: network, loss, ensemble, training, IO, estimator."""

import os
import subprocess
import sys

import numpy as np
import pytest
from astropy.table import QTable, Table

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from astro_clustermass.catalog import selection_mask  # noqa: E402
from astro_clustermass.cnn import builtin_estimator_specs  # noqa: E402
from astro_clustermass.cnn.dataset import (  # noqa: E402
    Normalisation,
    TrainingData,
    read_dataset,
    split_by_cluster,
    uniform_mass_weights,
    write_dataset,
)
from astro_clustermass.cnn.ensemble import Ensemble, combine  # noqa: E402
from astro_clustermass.cnn.estimator import (  # noqa: E402
    CNNEnsembleEstimator,
    EBIParameterMismatch,
    compare_ebi_parameters,
)
from astro_clustermass.cnn.io import ManifestError, load_members, read_manifest, save_ensemble  # noqa: E402
from astro_clustermass.cnn.losses import gaussian_nll  # noqa: E402
from astro_clustermass.cnn.model import build_model, count_parameters  # noqa: E402
from astro_clustermass.cnn.train import (  # noqa: E402
    TrainConfig,
    _Arrays,
    augment,
    evaluate_loss,
    train_ensemble,
    train_member,
)

torch.set_num_threads(min(2, torch.get_num_threads()))


def _ebi_params():
    try:
        from astro_clustermass.ebi import EBIParameters

        return EBIParameters().to_dict()
    except ImportError:  # the EBI module has not landed: the seed's values
        return {"npix": 300, "pixel_arcsec": 4.0, "emin_keV": 0.25, "emax_keV": 2.30,
                "nbands": 10, "rebin": 50, "kernel_size": [3, 3, 11], "kernel_sigma": 0.75,
                "clip": 36.0}


def synthetic_data(n=240, seed=0, side=50, nb=10):
    """Toy EBIs: a Gaussian blob whose brightness and size grow with mass, Poisson noise."""
    rng = np.random.default_rng(seed)
    logm = rng.uniform(13.5, 15.0, n)
    z = rng.uniform(0.1, 0.8, n)
    yy, xx = np.mgrid[:side, :side] - (side - 1) / 2
    r2 = xx ** 2 + yy ** 2
    spec = np.linspace(1.0, 0.3, nb)
    ebi = np.empty((n, side, side, nb), np.float32)
    for i in range(n):
        amp = 10 ** (1.2 * (logm[i] - 14.0)) * 3.0 / (1 + z[i]) ** 2
        width = 2.0 + 2.0 * (logm[i] - 13.5)
        lam = 0.05 + amp * np.exp(-r2 / (2 * width ** 2))[..., None] * spec
        ebi[i] = np.minimum(rng.poisson(lam), 36)
    cat = Table({"M500c": 10 ** logm, "z": z, "DET_LIKE": rng.uniform(3, 100, n),
                 "EXT_LIKE": rng.uniform(3, 100, n), "cluster_id": np.arange(n) // 2,
                 "realisation": np.zeros(n, int)})
    cat["M500c"].unit = "Msun"
    return TrainingData(ebi, cat, _ebi_params(), {}, None)


@pytest.fixture(scope="module")
def tiny_ensemble(tmp_path_factory):
    """A 2-member ensemble trained for 3 epochs on synthetic data (for IO/estimator tests)."""
    root = tmp_path_factory.mktemp("ens")
    data = synthetic_data(200, seed=1)
    path = root / "data.h5"
    write_dataset(path, data.ebi, data.catalog, ebi_parameters=data.ebi_parameters,
                  selection="", source="synthetic test data")
    data = read_dataset(str(path))
    config = TrainConfig(max_epochs=3, early_stopping_patience=10)
    manifest = train_ensemble(data, str(root / "ens"), str(root / "work"), n_members=2,
                              config=config, selection="", progress=False,
                              dataset_path=str(path))
    return root / "ens", manifest, data


# -- network ----------------------------------------------------------------------------
def test_seed000_shapes_and_parameter_count():
    model, config = build_model("seed000")
    assert count_parameters(model) == 303_942  # documented in model.py and docs/cnn.rst
    x = torch.rand(7, 10, 50, 50)
    feats = model.features(x)
    assert feats.shape == (7, 2880)  # 12 x 12 x 20
    out = model(x, torch.rand(7))
    assert out.shape == (7, 2)
    assert (out[:, 1] > 0).all()
    assert config["filters"] == [20, 20]


def test_resnet_small_selectable():
    model, _ = build_model("resnet-small")
    out = model(torch.rand(3, 10, 50, 50), torch.rand(3))
    assert out.shape == (3, 2) and (out[:, 1] > 0).all()
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("vgg99")


def test_sigma_stays_positive_for_extreme_logits():
    model, _ = build_model("seed000")
    with torch.no_grad():
        model.head.linear.bias.fill_(-1e4)
        model.head.linear.weight.zero_()
    out = model(torch.rand(2, 10, 50, 50), torch.rand(2))
    assert torch.all(out[:, 1] >= model.head.sigma_floor)


# -- loss -------------------------------------------------------------------------------
def test_gaussian_nll_hand_computation():
    mu = torch.tensor([14.0, 13.5])
    sigma = torch.tensor([0.2, 0.5])
    y = torch.tensor([14.1, 13.0])
    # by hand: 0.5 ln(0.04) + 0.01/0.08 = -1.609438 + 0.125 = -1.484438
    #          0.5 ln(0.25) + 0.25/0.5  = -0.693147 + 0.5   = -0.193147
    expected = (-1.4844379 + -0.1931472) / 2
    assert float(gaussian_nll(mu, sigma, y)) == pytest.approx(expected, abs=1e-6)
    w = torch.tensor([3.0, 1.0])
    assert float(gaussian_nll(mu, sigma, y, weight=w)) == pytest.approx(
        (3 * -1.4844379 - 0.1931472) / 4, abs=1e-6)
    full = float(gaussian_nll(mu, sigma, y, full=True))
    assert full == pytest.approx(expected + 0.5 * np.log(2 * np.pi), abs=1e-6)


# -- ensemble ---------------------------------------------------------------------------
def test_combine_matches_seed_equations():
    mu = np.array([[14.0, 13.2], [14.2, 13.6], [14.4, 13.4]])
    sig = np.array([[0.2, 0.3], [0.1, 0.2], [0.3, 0.25]])
    mean, sstar = combine(mu, sig)
    # Eq. 2: mean of mu; Eq. 3: <sigma^2 + mu^2> - mean^2, computed literally
    assert mean == pytest.approx([14.2, 13.4])
    for j in range(2):
        lit = np.mean(sig[:, j] ** 2 + mu[:, j] ** 2) - mean[j] ** 2
        assert sstar[j] ** 2 == pytest.approx(lit, rel=1e-9)
    # first column by hand: <sigma^2> = (0.04+0.01+0.09)/3, var(mu) = 0.08/3
    assert sstar[0] == pytest.approx(np.sqrt(0.14 / 3 + 0.08 / 3))


def test_fused_ensemble_equals_member_loop():
    models = []
    for s in range(3):
        torch.manual_seed(s)
        models.append(build_model("seed000")[0].eval())
    ebi = np.random.default_rng(2).poisson(0.5, (37, 50, 50, 10)).astype(np.float32)
    z = np.linspace(0.1, 0.9, 37)
    fused = Ensemble(models, Normalisation(), fuse=True)
    loop = Ensemble(models, Normalisation(), fuse=False)
    assert fused._fused is not None and loop._fused is None
    mu_f, sig_f = fused.predict_members(ebi, z, batch_size=10)
    mu_l, sig_l = loop.predict_members(ebi, z)
    np.testing.assert_allclose(mu_f, mu_l, atol=1e-5)
    np.testing.assert_allclose(sig_f, sig_l, atol=1e-5)
    with torch.no_grad():
        norm = Normalisation()
        direct = models[1](torch.from_numpy(norm.images(ebi)).contiguous(),
                           torch.from_numpy(norm.redshift(z)))
    mu_d, _ = norm.to_dex(direct[:, 0].numpy(), direct[:, 1].numpy())
    np.testing.assert_allclose(mu_f[1], mu_d, atol=1e-5)


# -- augmentation -----------------------------------------------------------------------
def test_augmentation_is_a_dihedral_transform_of_each_image():
    x = torch.rand(64, 10, 50, 50)
    out = augment(x, np.random.default_rng(0))
    seen = set()
    for i in range(len(x)):
        match = None
        for k in range(4):
            for flip in (False, True):
                t = torch.flip(x[i:i + 1], dims=(3,)) if flip else x[i:i + 1]
                t = torch.rot90(t, k, dims=(2, 3))
                if torch.equal(t, out[i:i + 1]):
                    match = (k, flip)
        assert match is not None, f"image {i} is not a rotation/flip of its input"
        seen.add(match)
        # per-band content (sum and sorted values) preserved
        assert torch.equal(torch.sort(out[i].reshape(10, -1), dim=1)[0],
                           torch.sort(x[i].reshape(10, -1), dim=1)[0])
    assert len(seen) == 8


# -- data sets --------------------------------------------------------------------------
def test_dataset_round_trip_and_selection(tmp_path):
    data = synthetic_data(20, seed=3)
    path = tmp_path / "d.h5"
    write_dataset(path, data.ebi, data.catalog, ebi_parameters=data.ebi_parameters,
                  selection="EXT_LIKE > 6", source="test")
    back = read_dataset(str(path))
    np.testing.assert_array_equal(back.ebi, data.ebi)
    np.testing.assert_allclose(back.log10_mass, data.log10_mass)
    assert back.ebi_parameters == data.ebi_parameters
    assert back.attrs["selection"] == "EXT_LIKE > 6"
    with pytest.raises(FileExistsError):
        write_dataset(path, data.ebi, data.catalog)
    mask = selection_mask(data.catalog, "EXT_LIKE > 6 & DET_LIKE > 5")
    expected = ((np.asarray(data.catalog["EXT_LIKE"]) > 6)
                & (np.asarray(data.catalog["DET_LIKE"]) > 5))
    np.testing.assert_array_equal(mask, expected)
    with pytest.raises(KeyError, match="NOPE"):
        selection_mask(data.catalog, "NOPE > 3")
    with pytest.raises(ValueError, match="cannot parse"):
        selection_mask(data.catalog, "EXT_LIKE >> 3")


def test_teaching_layout_is_read(tmp_path):
    import h5py

    data = synthetic_data(6, seed=4)
    path = tmp_path / "teach.h5"
    with h5py.File(path, "w") as f:
        f["gsm_3dImgs"] = data.ebi
    back = read_dataset(str(path), catalog=data.catalog)
    assert back.ebi.shape == (6, 50, 50, 10)


def test_split_by_cluster_never_splits_a_cluster():
    keys = np.repeat(np.arange(300), 3).astype(str)  # 3 images per cluster
    tr, va, te = split_by_cluster(keys, seed=5)
    assert len(tr) + len(va) + len(te) == len(keys)
    sets = [set(keys[i]) for i in (tr, va, te)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert len(sets[0]) == 210 and len(sets[1]) == 45 and len(sets[2]) == 45
    again = split_by_cluster(keys, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again))


def test_seed000_features_equal_the_plain_formulation():
    # features() uses in-place ReLUs and pools before the second one; outputs and
    # gradients must equal relu -> pool exactly
    import torch
    import torch.nn.functional as F

    from astro_clustermass.cnn.model import Seed000Net

    torch.manual_seed(3)
    net = Seed000Net()
    x = torch.randn(8, 10, 50, 50).contiguous(memory_format=torch.channels_last)
    z = torch.rand(8)

    def plain(x):
        h = F.avg_pool2d(F.relu(net.conv1(x)), 2)
        return torch.flatten(F.max_pool2d(F.relu(net.conv2(h)), 2), 1)

    a, b = net.features(x), plain(x)
    assert torch.equal(a, b)
    grads = []
    for f in (net.features, plain):
        net.zero_grad()
        (f(x) * torch.linspace(-1, 1, a.shape[1])).sum().backward()
        grads.append([p.grad.clone() for p in (net.conv1.weight, net.conv2.weight)])
    assert all(torch.equal(g, h) for g, h in zip(*grads))
    assert net(x, z).shape == (8, 2)


def test_split_by_field_keeps_each_field_in_one_set():
    from astro_clustermass.cnn.dataset import prepare_splits

    data = synthetic_data(240, seed=7)
    data.catalog["realisation"] = np.arange(240) % 12          # 12 fields
    splits, info = prepare_splits(data, "", split_seed=1, split_by="field")
    fields = [set(np.asarray(splits[k].catalog["realisation"])) for k in ("train", "val", "test")]
    assert not (fields[0] & fields[1]) and not (fields[0] & fields[2]) \
        and not (fields[1] & fields[2])
    assert sorted(len(f) for f in fields) == [2, 2, 8]            # 70/15/15 of 12 fields
    assert info["split_unit"] == "field" and info["n_train"] == 160
    # by cluster (the default) the fields are shared between the sets
    splits, info = prepare_splits(data, "", split_seed=1)
    assert set(splits["train"].catalog["realisation"]) & set(splits["test"].catalog["realisation"])
    assert info["split_unit"] == "cluster"
    data.catalog["realisation"] = np.arange(240) % 2
    with pytest.raises(ValueError, match="at least 3 fields"):
        prepare_splits(data, "", split_by="field")
    with pytest.raises(ValueError, match="split_by"):
        prepare_splits(data, "", split_by="halo")


def test_uniform_mass_weights_flatten_the_distribution():
    rng = np.random.default_rng(6)
    logm = np.concatenate([rng.uniform(13.5, 14.0, 900), rng.uniform(14.0, 14.5, 100)])
    w = uniform_mass_weights(logm, bin_width=0.1)
    assert np.mean(w) == pytest.approx(1.0, rel=1e-6)
    lo, hi = w[logm < 14].sum(), w[logm >= 14].sum()
    assert lo == pytest.approx(hi, rel=0.05)


def test_uniform_mass_weights_power_flattens_part_of_the_way():
    # 900 vs 100 clusters per half: power 0.5 gives weighted sums in the ratio sqrt(9) = 3,
    # power 0 leaves equal weights; outside [0, 1] is an error.
    rng = np.random.default_rng(6)
    logm = np.concatenate([rng.uniform(13.5, 14.0, 900), rng.uniform(14.0, 14.5, 100)])
    w = uniform_mass_weights(logm, bin_width=0.1, power=0.5)
    assert np.mean(w) == pytest.approx(1.0, rel=1e-6)
    assert w[logm < 14].sum() / w[logm >= 14].sum() == pytest.approx(3.0, rel=0.1)
    assert np.allclose(uniform_mass_weights(logm, power=0.0), 1.0)
    with pytest.raises(ValueError, match="power"):
        uniform_mass_weights(logm, power=1.5)


# -- training ---------------------------------------------------------------------------
def _tiny_split():
    data = synthetic_data(160, seed=7)
    return data.subset(np.arange(120)), data.subset(np.arange(120, 160)), data


def test_training_decreases_loss():
    train, val, data = _tiny_split()
    norm = Normalisation.fit(train.z, train.log10_mass)
    config = TrainConfig(max_epochs=6, learning_rate=1e-3, batch_size=20,
                         early_stopping_patience=100)
    torch.manual_seed(11)
    model0, _ = build_model("seed000")
    before = evaluate_loss(model0, _Arrays(train, norm))
    res = train_member(train, val, config, 11, norm, progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0]
    assert evaluate_loss(res.model, _Arrays(train, norm)) < before


def test_training_is_deterministic_and_resumable(tmp_path):
    train, val, _ = _tiny_split()
    norm = Normalisation.fit(train.z, train.log10_mass)
    config = TrainConfig(max_epochs=3, batch_size=40, early_stopping_patience=100)
    a = train_member(train, val, config, 3, norm, progress=False)
    b = train_member(train, val, config, 3, norm, progress=False)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    # interrupted after 2 epochs, resumed to 3: same weights as the uninterrupted run
    ck = tmp_path / "ck"
    short = TrainConfig(**{**config.to_dict(), "max_epochs": 2})
    train_member(train, val, short, 3, norm, checkpoint_dir=str(ck), progress=False)
    import json

    info = json.loads((ck / "checkpoint.json").read_text())
    info["config"]["max_epochs"] = 3
    info["done"] = False
    (ck / "checkpoint.json").write_text(json.dumps(info))
    c = train_member(train, val, config, 3, norm, checkpoint_dir=str(ck), progress=False)
    assert len(c.history) == 3
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, c.model.state_dict()[k]), k
    with pytest.raises(ValueError, match="other settings"):
        train_member(train, val, config, 4, norm, checkpoint_dir=str(ck), progress=False)


# -- IO ---------------------------------------------------------------------------------
def test_safetensors_round_trip_is_bit_exact(tiny_ensemble, tmp_path):
    ens_dir, manifest, _ = tiny_ensemble
    models, man = load_members(str(ens_dir))
    out = tmp_path / "copy"
    save_ensemble(str(out), models, {k: v for k, v in man.items()
                                     if k not in ("format", "format_version", "created")})
    models2, _ = load_members(str(out))
    for m1, m2 in zip(models, models2):
        for k, v in m1.state_dict().items():
            assert torch.equal(v, m2.state_dict()[k]) and v.dtype == m2.state_dict()[k].dtype
    assert not list(ens_dir.glob("*.pt")) and not list(ens_dir.glob("*.pkl"))
    assert (ens_dir / "training_curves.png").stat().st_size > 1000


def test_manifest_records_what_it_should(tiny_ensemble):
    ens_dir, _, data = tiny_ensemble
    man = read_manifest(str(ens_dir))
    assert man["architecture"]["name"] == "seed000"
    assert man["architecture"]["n_parameters"] == 303_942
    assert man["ebi_parameters"] == data.ebi_parameters
    assert set(man["normalisation"]) >= {"image_transform", "z_offset", "y_scale"}
    assert [m["seed"] for m in man["members"]] == [0, 1]
    assert man["dataset"]["n_train"] + man["dataset"]["n_val"] + man["dataset"]["n_test"] == 200
    assert len(man["dataset"]["sha256"]) == 64
    for key in ("scatter", "mean_sigma", "coverage68", "bias_by_mass"):
        assert key in man["metrics"]["test"]


def test_evaluate_command_on_validation_or_test_split(tiny_ensemble, tmp_path):
    import json

    from astro_clustermass.cli import main

    ens_dir, manifest, _ = tiny_ensemble
    data_path = str(ens_dir.parent / "data.h5")
    for split, key in (("val", "n_val"), ("test", "n_test")):
        out = tmp_path / split
        assert main(["evaluate-ensemble", data_path, "--weights", str(ens_dir), "--out",
                     str(out), "--split", split]) == 0
        result = json.loads((out / "metrics.json").read_text())
        assert result["split"] == split
        assert result[f"ensemble_{split}"]["n"] == manifest["dataset"][key]
    assert result["ensemble_test"]["scatter"] == pytest.approx(
        manifest["metrics"]["test"]["scatter"], rel=1e-4)


def test_corrupt_member_file_is_refused(tiny_ensemble, tmp_path):
    import shutil

    ens_dir, _, _ = tiny_ensemble
    bad = tmp_path / "bad"
    shutil.copytree(ens_dir, bad)
    p = bad / "member_01.safetensors"
    raw = bytearray(p.read_bytes())
    raw[-5] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(ManifestError, match="SHA-256"):
        load_members(str(bad))
    with pytest.raises(ManifestError, match="no manifest.yaml"):
        read_manifest(str(tmp_path))


# -- estimator --------------------------------------------------------------------------
def test_estimator_writes_columns(tiny_ensemble):
    ens_dir, _, data = tiny_ensemble
    n = 6
    images = data.ebi[:n].copy()
    images[2] = np.nan  # no image for this row
    table = QTable({"z": np.asarray(data.z[:n])})
    table["z"][4] = np.nan
    before = table.copy()
    est = CNNEnsembleEstimator(weights=str(ens_dir), images=images)
    out = est.add_columns(table)
    assert out.colnames[:1] == ["z"] and "M500c_cnn-ensemble" in out.colnames
    assert np.all(np.isnan(table["z"][4:5])) and table.colnames == before.colnames
    valid = ~out["M500c_cnn-ensemble"].mask
    np.testing.assert_array_equal(valid, [True, True, False, True, False, True])
    assert "no energy-band image" in out["M500c_cnn-ensemble_flag"][2]
    assert out["M500c_cnn-ensemble_flag"][4] != ""
    # ensemble columns agree with the member combination
    mu, sig = est.predict_members(table)
    mean, sstar = combine(mu[:, valid], sig[:, valid])
    np.testing.assert_allclose(out["log10M500c_cnn-ensemble"][valid].value, mean)
    np.testing.assert_allclose(out["log10M500c_cnn-ensemble_err"][valid].value, sstar)
    mt = est.member_table(table)
    assert mt["mu_members"].shape == (n, 2) and np.isfinite(mt["member_range"][0])
    assert out.meta["astro_clustermass"]["cnn-ensemble"]["parameters"]["n_members"] == 2


def test_estimator_image_column_and_file(tiny_ensemble, tmp_path):
    ens_dir, _, data = tiny_ensemble
    table = Table({"z": data.z[:4], "EBI_CUBE": data.ebi[:4]})
    a = CNNEnsembleEstimator(weights=str(ens_dir), image_column="EBI_CUBE").estimate(table)
    path = tmp_path / "stack.h5"
    write_dataset(path, data.ebi[:4], data.catalog[:4], ebi_parameters=data.ebi_parameters)
    b = CNNEnsembleEstimator(weights=str(ens_dir), images=str(path)).estimate(table)
    np.testing.assert_allclose(a.log10_mass, b.log10_mass)
    assert a.valid.all()


def test_estimator_refuses_other_ebi_parameters(tiny_ensemble, tmp_path):
    ens_dir, _, data = tiny_ensemble
    params = dict(data.ebi_parameters)
    key = next(k for k, v in params.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool))
    params[key] = params[key] * 2 + 1
    path = tmp_path / "other.h5"
    write_dataset(path, data.ebi[:3], data.catalog[:3], ebi_parameters=params)
    with pytest.raises(EBIParameterMismatch, match=key):
        CNNEnsembleEstimator(weights=str(ens_dir), images=str(path))
    with pytest.raises(EBIParameterMismatch, match=key):
        CNNEnsembleEstimator(weights=str(ens_dir), images=data.ebi[:3], ebi_parameters=params)
    with pytest.raises(EBIParameterMismatch, match="shape"):
        CNNEnsembleEstimator(weights=str(ens_dir), images=np.zeros((3, 40, 40, 10)))
    compare_ebi_parameters(data.ebi_parameters, dict(data.ebi_parameters))  # equal: fine


def test_builtin_spec_and_no_torch_on_import():
    spec = builtin_estimator_specs()[0]
    assert spec.name == "cnn-ensemble" and spec.inputs == ("z", "RA", "DEC")
    code = ("import sys, astro_clustermass, astro_clustermass.cnn, astro_clustermass.cli.train, "
            "astro_clustermass.cli.evaluate_ensemble, astro_clustermass.cnn.training_set, "
            "astro_clustermass.cnn.dataset, astro_clustermass.cnn.metrics; "
            "astro_clustermass.cnn.builtin_estimator_specs(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# -- data set from the package simulator ----------------------------------------------
def test_dataset_from_simulator_output(tmp_path):
    """`build_dataset` on a tiny stamp-mode run: the selected detections of the central
    halos, their true masses and redshifts, and EBIs at the detected positions."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    from astro_clustermass.cnn.training_set import (
        build_dataset,
        simulate_realisations,
        training_config,
    )
    from astro_clustermass.ebi import EBIParameters, energy_band_images
    from astro_clustermass.io.events import EventList
    from astro_clustermass.simulate import read_realisation

    dirs = simulate_realisations(str(tmp_path / "sim"), 1, seed=5, n_halos=30,
                                 config=training_config(log10_mmin=13.3), progress=False)
    assert len(dirs) == 1
    path = str(tmp_path / "dataset.h5")
    build_dataset(dirs, path, progress=False)
    data = read_dataset(path)
    cat = data.catalog
    real = read_realisation(dirs[0])
    det = real.detections
    central = np.asarray(np.ma.filled(np.ma.asarray(det["central"]), False), bool)
    want = (np.asarray(det["MATCHED"], bool) & central & (np.asarray(det["EXT_LIKE"]) > 6)
            & (np.asarray(det["DET_LIKE"]) > 5))
    assert len(data) == len(np.unique(np.asarray(det["HALO_ID"])[want])) > 0
    assert np.all(np.asarray(cat["EXT_LIKE"]) > 6) and np.all(np.asarray(cat["DET_LIKE"]) > 5)
    assert data.attrs["selection"] == "EXT_LIKE > 6 & DET_LIKE > 5"
    assert "astro_clustermass.simulate" in data.attrs["source"]
    assert data.ebi_parameters == EBIParameters().to_dict()
    # true mass and redshift from the truth table, by halo id
    truth = real.truth
    row = {int(h): i for i, h in enumerate(np.asarray(truth["HALO_ID"]))}
    ti = [row[int(h)] for h in np.asarray(cat["cluster_id"])]
    np.testing.assert_allclose(10 ** data.log10_mass, truth["M500c"][ti].to_value(u.Msun),
                               rtol=1e-6)
    np.testing.assert_allclose(data.z, np.asarray(truth["z"][ti], float))
    assert np.all(np.asarray(truth["central"][ti], bool))
    # EBIs centred on the detected (not the true) positions, from the event files
    det_pos = SkyCoord(np.asarray(cat["RA"]) * u.deg, np.asarray(cat["DEC"]) * u.deg)
    true_pos = SkyCoord(np.asarray(cat["RA_true"]) * u.deg, np.asarray(cat["DEC_true"]) * u.deg)
    events = EventList.read(real.event_files)
    np.testing.assert_array_equal(data.ebi, energy_band_images(events, det_pos))
    assert np.all(det_pos.separation(true_pos) > 0)
    assert data.ebi.shape[1:] == (50, 50, 10) and np.all(data.ebi.sum(axis=(1, 2, 3)) > 0)
    assert len(set(data.group_keys())) == len(data)


def _wait_policy_after(code, policy=None):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    code += "; print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.split()[-1]


def test_omp_wait_policy_passive_unless_user_set():
    # spinning OpenMP threads made torch 2-10x slower when another process held a core
    # (docs/performance.rst); the package asks for passive waiting before torch loads
    assert _wait_policy_after("import os, astro_clustermass.cnn.model") == "PASSIVE"
    # the package itself leaves the environment alone until one of its modules imports
    # torch (issue 20): listing, and building the CNN estimator, import no torch
    assert _wait_policy_after("import os, astro_clustermass") == "None"
    assert _wait_policy_after("import os, astro_clustermass as a; a.list_estimators()"
                              ) == "None"
    assert _wait_policy_after("import os, astro_clustermass as a; a.get_estimator('cnn-ensemble')"
                              ) == "None"
    assert _wait_policy_after("import os, astro_clustermass.cnn.ensemble") == "PASSIVE"
    # torch imported by the user, after the package: theirs, left alone
    assert _wait_policy_after("import os, astro_clustermass as a; a.list_estimators(); "
                              "import torch") == "None"
    assert _wait_policy_after("import os, astro_clustermass.cnn.model", "ACTIVE") == "ACTIVE"
    # torch already loaded: its OpenMP runtime has read the environment, nothing to change
    assert _wait_policy_after("import os, torch, astro_clustermass.cnn.model") == "None"


def test_train_step_benchmark_runs(benchmark_script):
    bench = benchmark_script("bench_train_step")
    ratio = bench.main(["--rounds", "1", "--steps", "1"])
    assert 0.0 < ratio < 10.0
