"""Training options of the thesis and lab reports (seeds 001-003) and the extra
architectures: each option changes what it should and nothing else."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_cnn import synthetic_data  # noqa: E402

from astro_clustermass.cnn.dataset import Normalisation  # noqa: E402
from astro_clustermass.cnn.model import (  # noqa: E402
    ARCHITECTURES,
    build_model,
    count_parameters,
    flops_per_sample,
)
from astro_clustermass.cnn.train import TrainConfig, make_optimizer, train_member  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="module")
def split():
    data = synthetic_data(100, seed=5)
    train, val = data.subset(np.arange(80)), data.subset(np.arange(80, 100))
    return train, val, Normalisation.fit(train.z, train.log10_mass)


def _fit(split, **kw):
    train, val, norm = split
    config = TrainConfig(**{"max_epochs": 3, "batch_size": 20, "learning_rate": 1e-3,
                            "early_stopping_patience": 100, **kw})
    return train_member(train, val, config, 2, norm, progress=False), config


# -- architectures ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["vgg-small", "efficientnet-small"])
def test_new_architectures_fit_the_inputs_and_their_size(name):
    model, config = build_model(name)
    n = count_parameters(model)
    assert 100_000 < n < 600_000  # "a few hundred k parameters"
    fl = flops_per_sample(model)
    assert 1e7 < fl < 2e8
    model.eval()
    out = model(torch.rand(3, 10, 50, 50), torch.rand(3))
    assert out.shape == (3, 2) and (out[:, 1] > 0).all()
    # the configuration is plain lists (YAML) and rebuilds the same network
    again, _ = build_model(name, **config)
    assert count_parameters(again) == n
    assert all(not isinstance(v, tuple) for v in config.values())


def test_efficientnet_blocks_have_squeeze_excitation_and_residuals():
    from astro_clustermass.cnn.model import _MBConv, _SqueezeExcite

    model, _ = build_model("efficientnet-small")
    blocks = [m for m in model.modules() if isinstance(m, _MBConv)]
    assert len(blocks) == 8
    assert all(any(isinstance(c, _SqueezeExcite) for c in b.modules()) for b in blocks)
    # residual where shapes agree: the first block (16 -> 16) and the repeats of stages 2-4
    assert [b.residual for b in blocks] == [True, False, True, False, True, False, True, False]
    # a squeeze-excitation gate scales each channel by a factor in (0, 1)
    se = _SqueezeExcite(4, 1)
    x = torch.rand(2, 4, 5, 5) + 1
    ratio = se(x) / x
    assert torch.all((ratio > 0) & (ratio < 1))
    assert torch.allclose(ratio, ratio[:, :, :1, :1].expand_as(ratio))


# -- dropout ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_dropout_acts_in_training_only_and_adds_no_weights(name):
    torch.manual_seed(0)
    plain, _ = build_model(name)
    torch.manual_seed(0)
    drop, cfg = build_model(name, dropout=0.5)
    assert cfg["dropout"] == 0.5
    assert plain.state_dict().keys() == drop.state_dict().keys()
    drop.load_state_dict(plain.state_dict())
    x, z = torch.rand(4, 10, 50, 50), torch.rand(4)
    plain.eval()
    drop.eval()
    with torch.no_grad():
        assert torch.equal(drop(x, z), plain(x, z))
    plain.train()
    drop.train()
    with torch.no_grad():  # (batch norm in training mode uses the batch statistics)
        assert not torch.allclose(drop(x, z), drop(x, z))
        assert torch.equal(plain(x, z), plain(x, z))


def test_dropout_key_reaches_the_network_and_manifest_config():
    cfg = TrainConfig(dropout=0.2)
    model, full = cfg.build_model()
    assert full["dropout"] == 0.2 and model.dropout == 0.2
    with pytest.raises(ValueError, match="dropout"):
        TrainConfig(dropout=1.0)


# -- weight decay -----------------------------------------------------------------------
def test_weight_decay_goes_to_the_weights_only():
    model, _ = build_model("resnet-small")
    opt = make_optimizer(model, TrainConfig(weight_decay=1e-3, optimizer="adamw"))
    assert isinstance(opt, torch.optim.AdamW)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 1e-3 and plain["weight_decay"] == 0.0
    assert all(p.dim() > 1 for p in decayed["params"])
    assert all(p.dim() == 1 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))
    assert isinstance(make_optimizer(model, TrainConfig()), torch.optim.Adam)


# AdamW shrinks by lr * lambda per step (12 steps of lr 1e-3 here), Adam's L2 acts
# through the normalised gradient: both lambdas are chosen to shrink clearly in 12 steps
@pytest.mark.parametrize("optimizer,decay", [("adam", 3.0), ("adamw", 30.0)])
def test_weight_decay_shrinks_the_weights(split, optimizer, decay):
    free, _ = _fit(split, optimizer=optimizer)
    decayed, _ = _fit(split, optimizer=optimizer, weight_decay=decay)

    def norm(m):
        return float(sum((p.detach() ** 2).sum() for p in m.parameters() if p.dim() > 1))

    assert norm(decayed.model) < 0.9 * norm(free.model)


def test_adam_l2_and_adamw_differ(split):
    a, _ = _fit(split, optimizer="adam", weight_decay=0.5)
    b, _ = _fit(split, optimizer="adamw", weight_decay=0.5)
    w = "dense.0.weight"
    assert not torch.allclose(a.model.state_dict()[w], b.model.state_dict()[w])


# -- learning-rate schedules ------------------------------------------------------------
def test_cosine_schedule_follows_the_formula(split):
    res, c = _fit(split, max_epochs=4, lr_schedule="cosine", min_lr=1e-5)
    for h in res.history:
        e = h["epoch"] + 1  # the rate after the epoch's scheduler step
        want = c.min_lr + (c.learning_rate - c.min_lr) * (1 + math.cos(math.pi * e / 4)) / 2
        assert h["lr"] == pytest.approx(want, rel=1e-6)
    assert res.history[-1]["lr"] == pytest.approx(1e-5)


def test_step_and_constant_schedules(split):
    res, c = _fit(split, max_epochs=5, lr_schedule="step", lr_step_epochs=2, lr_factor=0.1)
    got = [h["lr"] for h in res.history]
    assert got == pytest.approx([1e-3, 1e-4, 1e-4, 1e-5, 1e-5])
    res, _ = _fit(split, max_epochs=3, lr_schedule="constant")
    assert [h["lr"] for h in res.history] == pytest.approx([1e-3] * 3)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="exponential")


@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_schedule_survives_an_interruption(split, tmp_path, monkeypatch, schedule):
    import astro_clustermass.cnn.train as train_mod

    train, val, norm = split
    config = TrainConfig(max_epochs=4, batch_size=20, learning_rate=1e-3, lr_step_epochs=1,
                         lr_schedule=schedule, early_stopping_patience=100)
    a = train_member(train, val, config, 1, norm, progress=False)
    save = train_mod._save_checkpoint

    def killed_after_epoch_1(ckpt_dir, model, best_state, opt, sched, info):
        save(ckpt_dir, model, best_state, opt, sched, info)
        if info["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "_save_checkpoint", killed_after_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        train_member(train, val, config, 1, norm, checkpoint_dir=str(tmp_path), progress=False)
    monkeypatch.setattr(train_mod, "_save_checkpoint", save)
    b = train_member(train, val, config, 1, norm, checkpoint_dir=str(tmp_path), progress=False)
    assert [h["lr"] for h in a.history] == pytest.approx([h["lr"] for h in b.history])
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k


def test_old_checkpoint_config_without_new_keys_still_resumes(split, tmp_path):
    """A checkpoint written before the options existed (keys missing = defaults)."""
    import json

    train, val, norm = split
    config = TrainConfig(max_epochs=2, batch_size=20, early_stopping_patience=100)
    train_member(train, val, config, 1, norm, checkpoint_dir=str(tmp_path), progress=False)
    info = json.loads((tmp_path / "checkpoint.json").read_text())
    for key in ("dropout", "optimizer", "weight_decay", "lr_schedule", "lr_step_epochs",
                "pretrain_mse_epochs", "finetune"):
        del info["config"][key]
    (tmp_path / "checkpoint.json").write_text(json.dumps(info))
    train_member(train, val, config, 1, norm, checkpoint_dir=str(tmp_path), progress=False)
    with pytest.raises(ValueError, match="other settings"):
        train_member(train, val, TrainConfig(**{**config.to_dict(), "dropout": 0.1}), 1,
                     norm, checkpoint_dir=str(tmp_path), progress=False)


# -- MSE pre-training, NLL fine-tuning --------------------------------------------------
def test_mean_squared_error_hand_computation():
    from astro_clustermass.cnn.losses import mean_squared_error

    mu, y = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([0.0, 2.0, 1.0])
    assert float(mean_squared_error(mu, y)) == pytest.approx((1 + 0 + 9) / 3)
    w = torch.tensor([1.0, 1.0, 2.0])
    assert float(mean_squared_error(mu, y, w)) == pytest.approx((1 + 0 + 18) / 4)


def _per_epoch(monkeypatch, split, tmp_path, **kw):
    """Train with a checkpoint dir and record the model's state after every epoch."""
    import astro_clustermass.cnn.train as train_mod

    states = []
    save = train_mod._save_checkpoint

    def spy(ckpt_dir, model, best_state, opt, sched, info):
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        return save(ckpt_dir, model, best_state, opt, sched, info)

    monkeypatch.setattr(train_mod, "_save_checkpoint", spy)
    train, val, norm = split
    config = TrainConfig(**{"max_epochs": 3, "batch_size": 20, "learning_rate": 1e-3,
                            "early_stopping_patience": 100, **kw})
    res = train_member(train, val, config, 2, norm, checkpoint_dir=str(tmp_path),
                       progress=False)
    return res, states


def test_mse_pretraining_leaves_sigma_alone_then_nll_trains_it(split, tmp_path, monkeypatch):
    torch.manual_seed(2)
    init, _ = build_model("seed000")
    w0 = init.head.linear.weight[1].clone()
    res, states = _per_epoch(monkeypatch, split, tmp_path, pretrain_mse_epochs=2)
    assert [h["phase"] for h in res.history] == ["mse", "mse", "nll"]
    assert res.best_epoch == 2  # chosen among the NLL epochs only
    assert all(h["train_loss"] >= 0 for h in res.history[:2])  # squared errors
    # the mean's weights move in the MSE phase, sigma's row of the head does not
    assert not torch.equal(states[1]["head.linear.weight"][0], init.head.linear.weight[0])
    assert torch.equal(states[1]["head.linear.weight"][1], w0)
    assert not torch.equal(states[2]["head.linear.weight"][1], w0)
    with pytest.raises(ValueError, match="pretrain_mse_epochs"):
        TrainConfig(max_epochs=3, pretrain_mse_epochs=3)


def test_head_only_finetuning_freezes_the_body(split, tmp_path, monkeypatch):
    res, states = _per_epoch(monkeypatch, split, tmp_path / "head", max_epochs=4,
                             pretrain_mse_epochs=2, finetune="head", lr_schedule="constant")
    assert [h["phase"] for h in res.history] == ["mse", "mse", "nll", "nll"]
    after_mse, last = states[1], states[3]
    assert not torch.equal(after_mse["head.linear.weight"], last["head.linear.weight"])
    for k in after_mse:
        if not k.startswith("head."):
            assert torch.equal(after_mse[k], last[k]), k
    assert all(p.requires_grad for p in res.model.parameters())
    _, free = _per_epoch(monkeypatch, split, tmp_path / "all", max_epochs=4,
                         pretrain_mse_epochs=2, finetune="all", lr_schedule="constant")
    assert not torch.equal(free[1]["conv1.weight"], free[3]["conv1.weight"])


# -- the command's flags ----------------------------------------------------------------
def test_train_flags_reach_the_config():
    from astro_clustermass.cli import _build_parser
    from astro_clustermass.cli.train import train_config

    args = _build_parser().parse_args([
        "train", "d.h5", "-o", "ens", "--arch", "efficientnet-small", "--dropout", "0.2",
        "--optimizer", "adamw", "--weight-decay", "1e-4", "--lr-schedule", "step",
        "--lr-step", "7", "--lr-factor", "0.3", "--min-lr", "1e-7", "--lr-patience", "4",
        "--pretrain-mse-epochs", "5", "--finetune", "head", "--epochs", "50"])
    c = train_config(args)
    assert (c.architecture, c.dropout, c.optimizer, c.weight_decay) == \
        ("efficientnet-small", 0.2, "adamw", 1e-4)
    assert (c.lr_schedule, c.lr_step_epochs, c.lr_factor, c.min_lr, c.lr_patience) == \
        ("step", 7, 0.3, 1e-7, 4)
    assert (c.pretrain_mse_epochs, c.finetune, c.max_epochs) == (5, "head", 50)
    default = train_config(_build_parser().parse_args(["train", "d.h5", "-o", "ens"]))
    assert default == TrainConfig()  # the flags' defaults are the config's
