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
``vgg-small``
    A VGG-like network (Simonyan & Zisserman 2015; seed 001 sect. 2.5 and 4.2) scaled
    to 50x50x10: three blocks of two 3x3 convolutions (16/32/64 filters, batch
    normalisation, ReLU) each followed by a 2x2 max-pool (50 -> 25 -> 12 -> 6), flatten,
    redshift concatenated, two dense layers of 128 + ReLU (VGG's dense top, narrowed),
    dense 2.
``efficientnet-small``
    An EfficientNet-B0-like network (Tan & Le 2019; seed 001 sect. 2.5 and 4.4) sized
    for 50x50x10: a 3x3 stem (stride 1: the images are already small), then MBConv blocks
    (1x1 expansion, depthwise k x k, squeeze-and-excitation with 1/4 of the block's input
    channels, 1x1 linear projection, residual when shapes agree; SiLU and batch
    normalisation as in B0) in B0's pattern of expansion 1 then 6, kernels 3/3/5/3/5,
    widths 16/24/40/80/96 at strides 1/2/2/2/1, a 1x1 head to 256 channels, global
    average pooling, redshift concatenated, dense 64 + SiLU, dense 2.

Every architecture takes ``dropout`` (default 0): the probability with which the
activations entering each dense layer after the convolutions (seed000, vgg-small: after
every dense layer, where the lab report of seed 002 sect. 7 found it best; resnet-small,
efficientnet-small: before the dense layer and the head) are zeroed in training. It adds
no weights, so an ensemble trained without it loads unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ARCHITECTURES", "build_model", "count_parameters", "Seed000Net",
           "ResNetSmall", "VGGSmall", "EfficientNetSmall", "GaussianHead",
           "flops_per_sample"]


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
    dropout : float
        Dropout probability after every dense layer (training only).
    """

    def __init__(self, in_channels=10, image_size=50, filters=(20, 20), dense=(100, 100),
                 kernel_size=3, sigma_floor=1e-3, dropout=0.0):
        super().__init__()
        self.dropout = float(dropout)
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
        # in place, and max-pool before the ReLU (they commute): the same values and
        # gradients as relu -> pool, with 4x less memory traffic in the second block
        x = F.avg_pool2d(F.relu_(self.conv1(x)), 2)
        x = F.relu_(F.max_pool2d(self.conv2(x), 2))
        return torch.flatten(x, 1)

    def forward(self, x, z):
        h = torch.cat([self.features(x), z.reshape(-1, 1).to(x.dtype)], dim=1)
        for layer in self.dense:
            h = F.dropout(F.relu(layer(h)), self.dropout, self.training)
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
                 dense=64, sigma_floor=1e-3, dropout=0.0):
        super().__init__()
        self.dropout = float(dropout)
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
        h = F.dropout(h, self.dropout, self.training)
        h = torch.cat([h, z.reshape(-1, 1).to(x.dtype)], dim=1)
        h = F.dropout(F.relu(self.dense(h)), self.dropout, self.training)
        return self.head(h)


class VGGSmall(nn.Module):
    """A VGG-like network for 50x50 EBIs (see module docstring).

    Parameters
    ----------
    in_channels, image_size : int
    widths : tuple of int
        Filters of the convolutional blocks (each halves the image with a max-pool).
    convs_per_block : int
    dense : tuple of int
        Dense layers after the flattening; the redshift joins the first.
    batch_norm : bool
        Batch normalisation after each convolution (VGG-BN); without it the thesis's
        VGG16/19 did not train on these images (seed 001 sect. 4.2).
    sigma_floor, dropout : float
    """

    def __init__(self, in_channels=10, image_size=50, widths=(16, 32, 64), convs_per_block=2,
                 dense=(128, 128), batch_norm=True, sigma_floor=1e-3, dropout=0.0):
        super().__init__()
        self.dropout = float(dropout)
        layers, c_in, side = [], in_channels, image_size
        for w in widths:
            for _ in range(convs_per_block):
                layers.append(nn.Conv2d(c_in, w, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(w))
                layers.append(nn.ReLU())
                c_in = w
            layers.append(nn.MaxPool2d(2))
            side //= 2
        self.features = nn.Sequential(*layers)
        self.n_flat = c_in * side * side
        n_in, dl = self.n_flat + 1, []
        for width in dense:
            dl.append(nn.Linear(n_in, width))
            n_in = width
        self.dense = nn.ModuleList(dl)
        self.head = GaussianHead(n_in, sigma_floor)

    def forward(self, x, z):
        h = torch.flatten(self.features(x), 1)
        h = torch.cat([h, z.reshape(-1, 1).to(x.dtype)], dim=1)
        for layer in self.dense:
            h = F.dropout(F.relu(layer(h)), self.dropout, self.training)
        return self.head(h)


class _SqueezeExcite(nn.Module):
    """Channel gates from the globally pooled activations (Hu et al. 2018)."""

    def __init__(self, channels, squeezed):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.expand(F.silu(self.reduce(s))))


class _MBConv(nn.Module):
    """Mobile inverted bottleneck with squeeze-excitation (EfficientNet's block)."""

    def __init__(self, c_in, c_out, expand, kernel, stride, se_ratio=0.25):
        super().__init__()
        mid = c_in * expand
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.SiLU()]
        layers += [nn.Conv2d(mid, mid, kernel, stride=stride, padding=kernel // 2,
                             groups=mid, bias=False), nn.BatchNorm2d(mid), nn.SiLU(),
                   _SqueezeExcite(mid, max(1, int(c_in * se_ratio))),
                   nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        out = self.block(x)
        return out + x if self.residual else out


class EfficientNetSmall(nn.Module):
    """An EfficientNet-B0-like network for 50x50 EBIs (see module docstring).

    Parameters
    ----------
    in_channels, image_size : int
    stem : int
        Channels of the 3x3 stem convolution.
    stages : list of [expansion, channels, repeats, stride, kernel]
        MBConv stages in order (B0's table, narrowed and shortened for 50x50 inputs).
    head_channels : int
        The final 1x1 convolution before global pooling.
    dense : int
    sigma_floor, dropout : float
    """

    def __init__(self, in_channels=10, image_size=50, stem=16,
                 stages=((1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5),
                         (6, 80, 2, 2, 3), (6, 96, 1, 1, 5)),
                 head_channels=256, dense=64, sigma_floor=1e-3, dropout=0.0):
        super().__init__()
        self.dropout = float(dropout)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(stem), nn.SiLU())
        blocks, c_in = [], stem
        for expand, c_out, repeats, stride, kernel in stages:
            for r in range(repeats):
                blocks.append(_MBConv(c_in, c_out, expand, kernel, stride if r == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.top = nn.Sequential(nn.Conv2d(c_in, head_channels, 1, bias=False),
                                 nn.BatchNorm2d(head_channels), nn.SiLU())
        self.dense = nn.Linear(head_channels + 1, dense)
        self.head = GaussianHead(dense, sigma_floor)

    def forward(self, x, z):
        h = self.top(self.blocks(self.stem(x)))
        h = torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
        h = F.dropout(h, self.dropout, self.training)
        h = torch.cat([h, z.reshape(-1, 1).to(x.dtype)], dim=1)
        h = F.dropout(F.silu(self.dense(h)), self.dropout, self.training)
        return self.head(h)


#: name -> (class, default keyword configuration)
ARCHITECTURES = {
    "seed000": (Seed000Net, dict(in_channels=10, image_size=50, filters=(20, 20),
                                 dense=(100, 100), kernel_size=3, sigma_floor=1e-3,
                                 dropout=0.0)),
    "resnet-small": (ResNetSmall, dict(in_channels=10, image_size=50, widths=(16, 32, 64),
                                       blocks=2, dense=64, sigma_floor=1e-3, dropout=0.0)),
    "vgg-small": (VGGSmall, dict(in_channels=10, image_size=50, widths=(16, 32, 64),
                                 convs_per_block=2, dense=(128, 128), batch_norm=True,
                                 sigma_floor=1e-3, dropout=0.0)),
    "efficientnet-small": (EfficientNetSmall, dict(
        in_channels=10, image_size=50, stem=16,
        stages=((1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 2, 2, 3),
                (6, 96, 1, 1, 5)),
        head_channels=256, dense=64, sigma_floor=1e-3, dropout=0.0)),
}


def _nested(value, kind):
    """Tuples and lists, at any depth, as ``kind`` (lists for YAML, tuples for modules)."""
    if isinstance(value, (list, tuple)):
        return kind(_nested(v, kind) for v in value)
    return value


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
    full = {k: _nested(v, list) for k, v in {**defaults, **config}.items()}
    kwargs = {k: _nested(v, tuple) for k, v in full.items()}
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
