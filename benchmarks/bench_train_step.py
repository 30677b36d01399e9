#!/usr/bin/env python
"""Time of one seed-000 training step per cluster: the package's ``features`` (in-place
ReLUs, max-pool before the second ReLU) against the plain relu -> pool formulation.

Both give the same outputs and gradients (``tests/test_cnn.py``); this measures what the
order costs. Batches of 100 random channels-last EBIs, Adam, the Gaussian NLL; the two
formulations alternate in ``--rounds`` rounds of ``--steps`` steps (after 3 warm-up
steps), and the median ratio of the rounds is reported, so that the load of a shared
machine falls on both alike.

Usage::

    python benchmarks/bench_train_step.py --threads 1 --rounds 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def plain_features(net, x):
    import torch
    import torch.nn.functional as F

    h = F.avg_pool2d(F.relu(net.conv1(x)), 2)
    return torch.flatten(F.max_pool2d(F.relu(net.conv2(h)), 2), 1)


def step_time(features, steps, batch=100, seed=0):
    """Seconds per cluster of ``steps`` training steps with ``features(net, x)``."""
    import torch

    from astro_clustermass.cnn.model import Seed000Net

    torch.manual_seed(seed)
    net = Seed000Net()
    x = torch.randn(batch, 10, 50, 50).contiguous(memory_format=torch.channels_last)
    z, y = torch.rand(batch), torch.randn(batch)
    opt = torch.optim.Adam(net.parameters(), 1e-4)

    def forward():
        h = torch.cat([features(net, x), z.reshape(-1, 1)], dim=1)
        for layer in net.dense:
            h = torch.relu(layer(h))
        return net.head(h)

    for i in range(steps + 3):
        if i == 3:
            t0 = time.perf_counter()
        out = forward()
        loss = (0.5 * ((y - out[:, 0]) / out[:, 1]) ** 2 + torch.log(out[:, 1])).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps / batch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--steps", type=int, default=15)
    a = p.parse_args(argv)
    import torch

    from astro_clustermass.cnn.model import Seed000Net

    torch.set_num_threads(a.threads)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; torch {torch.__version__}, "
          f"{a.threads} thread(s); load {os.getloadavg()[0]:.1f}")
    package, plain, ratios = [], [], []
    for _ in range(a.rounds):
        t_plain = step_time(plain_features, a.steps)
        t_pkg = step_time(lambda net, x: Seed000Net.features(net, x), a.steps)
        plain.append(t_plain)
        package.append(t_pkg)
        ratios.append(t_pkg / t_plain)
    print(f"plain relu -> pool: median {statistics.median(plain) * 1e3:.3f} ms per cluster")
    print(f"package features:   median {statistics.median(package) * 1e3:.3f} ms per cluster")
    print(f"ratio per round: {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.3f}")
    return statistics.median(ratios)


if __name__ == "__main__":
    main()
