"""Network architectures for the CNN mass estimator (imports torch).

Every architecture maps an energy-band image (EBI) batch of shape ``(N, C, H, W)``
(bands as channels, already normalised, see `astro_clustermass.cnn.dataset.Normalisation`)
and a normalised redshift ``(N,)`` to ``(N, 2)``: the mean and the standard deviation of
the normalised target ``t = (log10(M500c / Msun) - y_offset) / y_scale``. The standard
deviation is kept positive with a softplus plus a small floor.

Architectures are looked up by name in `ARCHITECTURES` with `build_model`:

``seed000``
    The network of Krippendorf et al. (seed 000, sect. 3; seed 001 Fig. 10/12):
    conv 3x3 'same' + ReLU + average-pool 2, conv 3x3 'same' + ReLU + max-pool 2
    (50x50x10 -> 12x12x20), flatten to 2880, redshift concatenated, dense 100 + ReLU,
    dense 100 + ReLU, dense 2. With the default 20 + 20 filters it has 303,942
    parameters, 95% of them in the first dense layer.
``resnet-small``
    A deeper alternative after the residual networks compared in seed 001 sect. 4.3,
    scaled to the 50x50 inputs and CPU training: a 3x3 stem, three stages of two basic
    residual blocks (He et al. 2016) with 16/32/64 channels (strided downsampling),
    global average pooling, redshift concatenated, dense 64 + ReLU, dense 2.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ARCHITECTURES", "build_model", "count_parameters", "Seed000Net",
           "ResNetSmall", "GaussianHead", "flops_per_sample"]


class GaussianHead(nn.Module):
    """Final dense layer -> (mu, sigma) with sigma = softplus(raw) + floor."""

    def __init__(self, n_in, sigma_floor=1e-3):
        super().__init__()
        self.linear = nn.Linear(n_in, 2)
        self.sigma_floor = float(sigma_floor)

    def forward(self, h):
        raw = self.linear(h)
        mu = raw[:, 0]
        sigma = F.softplus(raw[:, 1]) + self.sigma_floor
        return torch.stack([mu, sigma], dim=1)


class Seed000Net(nn.Module):
    """The seed-000 CNN (see module docstring).

    Parameters
    ----------
    in_channels : int
        Energy bands (10).
    image_size : int
        Side of the square input in pixels (50).
    filters : tuple of int
        Filters of the two convolutional blocks.
    dense : tuple of int
        Widths of the dense layers after the flattening; the redshift joins the first.
    kernel_size : int
    sigma_floor : float
        Added to the softplus of the sigma output (normalised units).
    """

    def __init__(self, in_channels=10, image_size=50, filters=(20, 20), dense=(100, 100),
                 kernel_size=3, sigma_floor=1e-3):
        super().__init__()
        f1, f2 = filters
        pad = kernel_size // 2
        self.conv1 = nn.Conv2d(in_channels, f1, kernel_size, padding=pad)
        self.conv2 = nn.Conv2d(f1, f2, kernel_size, padding=pad)
        side = (image_size // 2) // 2
        self.n_flat = f2 * side * side
        layers = []
        n_in = self.n_flat + 1
        for width in dense:
            layers.append(nn.Linear(n_in, width))
            n_in = width
        self.dense = nn.ModuleList(layers)
        self.head = GaussianHead(n_in, sigma_floor)

    def features(self, x):
        x = F.avg_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return torch.flatten(x, 1)

    def forward(self, x, z):
        h = torch.cat([self.features(x), z.reshape(-1, 1).to(x.dtype)], dim=1)
        for layer in self.dense:
            h = F.relu(layer(h))
        return self.head(h)


class _BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + identity)


class ResNetSmall(nn.Module):
    """A small residual network (see module docstring)."""

    def __init__(self, in_channels=10, image_size=50, widths=(16, 32, 64), blocks=2,
                 dense=64, sigma_floor=1e-3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        stages = []
        c_in = widths[0]
        for i, w in enumerate(widths):
            for b in range(blocks):
                stride = 2 if (b == 0 and i > 0) else 1
                stages.append(_BasicBlock(c_in, w, stride))
                c_in = w
        self.stages = nn.Sequential(*stages)
        self.dense = nn.Linear(c_in + 1, dense)
        self.head = GaussianHead(dense, sigma_floor)

    def forward(self, x, z):
        h = self.stages(self.stem(x))
        h = torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
        h = torch.cat([h, z.reshape(-1, 1).to(x.dtype)], dim=1)
        return self.head(F.relu(self.dense(h)))


#: name -> (class, default keyword configuration)
ARCHITECTURES = {
    "seed000": (Seed000Net, dict(in_channels=10, image_size=50, filters=(20, 20),
                                 dense=(100, 100), kernel_size=3, sigma_floor=1e-3)),
    "resnet-small": (ResNetSmall, dict(in_channels=10, image_size=50, widths=(16, 32, 64),
                                       blocks=2, dense=64, sigma_floor=1e-3)),
}


def build_model(name, **config):
    """Instantiate architecture ``name`` with its defaults updated by ``config``.

    Returns
    -------
    model : `torch.nn.Module`
    config : dict
        The full configuration (plain Python types, for the manifest).
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}")
    cls, defaults = ARCHITECTURES[name]
    unknown = set(config) - set(defaults)
    if unknown:
        raise ValueError(f"architecture {name!r} has no option(s) {sorted(unknown)}; "
                         f"options: {sorted(defaults)}")
    full = {**defaults, **config}
    full = {k: (list(v) if isinstance(v, tuple) else v) for k, v in full.items()}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in full.items()}
    return cls(**kwargs), full


def count_parameters(model):
    """Number of trainable parameters."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def flops_per_sample(model, image_shape=(10, 50, 50)):
    """Floating-point operations of one forward pass for one sample.

    Counted with `torch.utils.flop_counter.FlopCounterMode` (multiply-add = 2 FLOPs;
    convolutions and matrix products only, as that module counts them).
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    x = torch.zeros((4, *image_shape))
    z = torch.zeros(4)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x, z)
    model.train(was_training)
    return counter.get_total_flops() / 4.0
