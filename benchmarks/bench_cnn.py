"""Benchmark of the CNN ensemble on CPU: inference speed, FLOP efficiency, training speed.

Usage::

    python benchmarks/bench_cnn.py [--threads 2] [--weights DIR] [--dataset data.h5]
                                   [--n-infer 4096] [--train-epochs 2] [--json out.json]

Inference: the ensemble (default: the shipped one) on ``--n-infer`` EBIs (Poisson images
with the eFEDS background level if no data set is given, else the data set's first rows),
end to end through `Ensemble.predict` (normalisation, fused network, Eqs. 2-3), after a
warm-up pass; clusters per second, best of 3. FLOPs per cluster are counted with
`torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix products, 2 per
multiply-add) times the number of members. The machine's dense float32 matmul rate is
measured in the same run with the same thread count (2048 x 2048 products, best of 5),
so the efficiency is a ratio taken under the same load.

Training: seconds per epoch of one seed-000 member (Adam, batch 100, augmentation,
validation pass included) on the training split of ``--dataset`` (the default data set),
or on a synthetic set of ``--n-train`` images if none is given.

The machine is shared: under load, wall-clock rates of both the inference and the
matmul vary by factors of 2-3 within a minute. The benchmark therefore also reports the
ratio of *CPU-time* rates (FLOPs per CPU-second of this process, all threads, with
``OMP_WAIT_POLICY=PASSIVE`` so that waiting threads do not burn CPU): the work each
takes per FLOP, which the other processes on the machine change much less
(``infer_fraction_of_matmul_cpu``); every figure comes with ``uptime`` before and after.

``--micro-batches 8 16 32 64``: the fused network's CPU micro-batch sizes of the
convolutions, each with the dense layers run on the same micro-batch (as before
2026-12-06) and on 256 clusters (the default since), compared in interleaved rounds
(``--rounds``), each against the matmul measured right beside it, by CPU time (median and
range over the rounds). ``--jit``: the same with the convolutional part traced and
frozen with TorchScript (oneDNN convolution + ReLU fusion). ``--profile``: a
`torch.profiler` table of one inference pass (where the time goes).

``--wait-policy-check``: the same inference (1,024 clusters) and two training epochs
(at most 500 training clusters), each in a fresh child process, with ``OMP_WAIT_POLICY``
= ACTIVE and PASSIVE, on the machine as it is and with one extra busy-loop process
holding a core; the ratios show what spinning OpenMP threads cost when a core is taken
(the package sets PASSIVE unless the user chose, see `astro_clustermass.cnn`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np


def _uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def matmul_flops(torch, n=2048, repeats=5, clock=time.perf_counter):
    """Dense float32 matmul rate, FLOP per second of ``clock`` (wall or process CPU)."""
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    for _ in range(2):
        a @ b
    best = np.inf
    for _ in range(repeats):
        t = clock()
        a @ b
        best = min(best, clock() - t)
    return 2.0 * n ** 3 / best


def _clusters_per_second(ens, ebi, z, warmup=256, repeats=3):
    """Best of ``repeats`` timings of ``ens.predict`` on all inputs, after a warm-up on
    the first ``warmup`` (oneDNN primitive creation)."""
    ens.predict(ebi[:warmup], z[:warmup])
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        ens.predict(ebi, z)
        best = min(best, time.perf_counter() - t)
    return len(z) / best


def _cpu_rate(ens, ebi, z, repeats=3):
    """Clusters per CPU-second of this process (all threads), best of ``repeats``."""
    best = np.inf
    for _ in range(repeats):
        t = time.process_time()
        ens.predict(ebi, z)
        best = min(best, time.process_time() - t)
    return len(z) / best


class _FrozenFeatures:
    """The fused network with its convolutional part traced and frozen (TorchScript)."""

    def __init__(self, torch, fused, x):
        class Features(torch.nn.Module):
            def __init__(self, f):
                super().__init__()
                self.f = f

            def forward(self, x):
                return self.f.features(x)

        with torch.inference_mode():
            self.features = torch.jit.optimize_for_inference(torch.jit.freeze(
                torch.jit.trace(Features(fused).eval(), (x,))))
        self.dense_head = fused.dense_head


def micro_batch_rounds(torch, ens, ebi, z, sizes, rounds, flops_per_cluster, jit=False,
                       dense_sizes=(16, 256)):
    """Fraction of the matmul CPU-time rate reached with each convolution micro-batch
    size and dense-layer batch (and the TorchScript-frozen convolutions if ``jit``), in
    interleaved rounds."""
    variants = [(f"micro-batch {s:3d}, dense batch {max(s, d):4d}", s, d, None)
                for s in sizes for d in dense_sizes if d >= s]
    if jit:
        x = torch.zeros((16, ebi.shape[3], ebi.shape[1], ebi.shape[2]))
        frozen = _FrozenFeatures(torch, ens._fused, x.contiguous(
            memory_format=torch.channels_last))
        variants += [(f"TorchScript, micro-batch {s:3d}, dense batch {max(s, 256):4d}", s,
                      256, frozen) for s in sizes]
    saved = ens._fused, ens.cpu_micro_batch, ens.cpu_dense_batch
    out = {name: [] for name, _, _, _ in variants}

    def use(step, dense, net):
        ens._fused, ens.cpu_micro_batch, ens.cpu_dense_batch = net or saved[0], step, dense

    try:
        for name, step, dense, net in variants:  # warm-up (oneDNN primitives)
            use(step, dense, net)
            ens.predict(ebi[:64], z[:64])
        for _ in range(rounds):
            for name, step, dense, net in variants:
                use(step, dense, net)
                mm = matmul_flops(torch, repeats=3, clock=time.process_time)
                rate = _cpu_rate(ens, ebi, z, repeats=1)
                mm = max(mm, matmul_flops(torch, repeats=3, clock=time.process_time))
                out[name].append(rate * flops_per_cluster / mm)
    finally:
        ens._fused, ens.cpu_micro_batch, ens.cpu_dense_batch = saved
    return {name: {"median": float(np.median(v)), "min": float(min(v)), "max": float(max(v))}
            for name, v in out.items()}


def _profile(torch, ens, ebi, z):
    from torch.profiler import ProfilerActivity, profile

    ens.predict(ebi[:64], z[:64])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        ens.predict(ebi, z)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)


def _inputs(ens, dataset, n, rng):
    if dataset:
        from astro_clustermass.cnn.dataset import read_dataset

        data = read_dataset(dataset)
        idx = np.arange(min(n, len(data)))
        return data, data.ebi[idx], data.z[idx], f"first {len(idx)} rows of {dataset}"
    shape = tuple(ens.manifest.get("input", {}).get("image_shape", (50, 50, 10)))
    ebi = rng.poisson(0.4, (n, *shape)).astype(np.float32)
    z = rng.uniform(0.05, 1.0, n)
    return None, ebi, z, f"{n} synthetic Poisson EBIs (mean 0.4 counts/pixel/band)"


def _training_splits(ens, data, dataset, n_train):
    if data is not None:
        from astro_clustermass.catalog import EFEDS_SELECTION
        from astro_clustermass.cnn.dataset import prepare_splits

        splits, _ = prepare_splits(data, ens.manifest.get("dataset", {}).get(
            "selection", EFEDS_SELECTION))
        train, val = splits["train"], splits["val"]
        return train, val, f"{dataset}: {len(train)} training, {len(val)} validation"
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from test_cnn import synthetic_data

    d = synthetic_data(n_train + n_train // 4, seed=0)
    train = d.subset(np.arange(n_train))
    val = d.subset(np.arange(n_train, len(d)))
    return train, val, f"synthetic: {len(train)} training, {len(val)} validation"


def _seconds_per_epoch(train, val, epochs):
    from astro_clustermass.cnn.dataset import Normalisation
    from astro_clustermass.cnn.train import TrainConfig, train_member

    norm = Normalisation.fit(train.z, train.log10_mass)
    config = TrainConfig(max_epochs=epochs, early_stopping_patience=1000)
    r = train_member(train, val, config, 0, norm, progress=False)
    return float(np.median([h["seconds"] for h in r.history]))


def _child_quick(args):
    """One cell of --wait-policy-check (run in a fresh process); prints JSON."""
    import astro_clustermass.cnn  # noqa: F401  (before torch: sets OMP_WAIT_POLICY)

    # isort: split
    import torch

    torch.set_num_threads(args.threads)
    from astro_clustermass.cnn.ensemble import Ensemble
    from astro_clustermass.cnn.io import default_weights_dir

    ens = Ensemble.load(args.weights or default_weights_dir())
    data, ebi, z, _ = _inputs(ens, args.dataset, 1024, np.random.default_rng(0))
    clusters_per_s = _clusters_per_second(ens, ebi, z, warmup=128)
    train, val, _ = _training_splits(ens, data, args.dataset, 500)
    train = train.subset(np.arange(min(500, len(train))))
    val = val.subset(np.arange(min(125, len(val))))
    spe = _seconds_per_epoch(train, val, 2)
    print(json.dumps({"infer_clusters_per_s": clusters_per_s, "train_seconds_per_epoch": spe,
                      "train_n": len(train), "policy": os.environ.get("OMP_WAIT_POLICY")}))
    return 0


def wait_policy_check(args):
    """ACTIVE vs PASSIVE OpenMP waiting, with and without a busy process on one core."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child-quick", "--threads",
           str(args.threads)]
    if args.dataset:
        cmd += ["--dataset", args.dataset]
    if args.weights:
        cmd += ["--weights", args.weights]
    rows = []
    for busy in (False, True):
        for policy in ("ACTIVE", "PASSIVE"):
            hog = (subprocess.Popen([sys.executable, "-c", "while True: pass"])
                   if busy else None)
            try:
                env = dict(os.environ, OMP_WAIT_POLICY=policy)
                out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row.update(busy_process=busy, load=os.getloadavg()[0])
            rows.append(row)
            print(f"  busy process {'yes' if busy else 'no ':3s}  OMP_WAIT_POLICY={policy:7s} "
                  f"inference {row['infer_clusters_per_s']:7.0f} clusters/s   training "
                  f"{row['train_seconds_per_epoch']:6.2f} s/epoch ({row['train_n']} clusters)"
                  f"   load {row['load']:.1f}", flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--weights", default=None, help="ensemble directory (default: shipped)")
    p.add_argument("--dataset", default=None, help="training data set (HDF5) for realistic inputs "
                                                   "and the training timing")
    p.add_argument("--n-infer", type=int, default=4096)
    p.add_argument("--train-epochs", type=int, default=2)
    p.add_argument("--n-train", type=int, default=2000,
                   help="synthetic training size if no --dataset")
    p.add_argument("--skip-training", action="store_true")
    p.add_argument("--micro-batches", type=int, nargs="+", default=None,
                   help="compare these CPU micro-batch sizes (interleaved rounds, CPU time)")
    p.add_argument("--jit", action="store_true",
                   help="with --micro-batches: also the TorchScript-frozen network")
    p.add_argument("--rounds", type=int, default=5, help="rounds of --micro-batches")
    p.add_argument("--profile", action="store_true", help="torch.profiler table of inference")
    p.add_argument("--wait-policy-check", action="store_true",
                   help="also time ACTIVE vs PASSIVE OpenMP waiting, with and without a "
                        "busy process on one core (child processes)")
    p.add_argument("--child-quick", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    if args.child_quick:
        return _child_quick(args)

    import astro_clustermass.cnn  # noqa: F401  (before torch: sets OMP_WAIT_POLICY)

    # isort: split
    import torch

    torch.set_num_threads(args.threads)
    from astro_clustermass.cnn.ensemble import Ensemble
    from astro_clustermass.cnn.io import default_weights_dir
    from astro_clustermass.cnn.model import flops_per_sample

    res = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "threads": args.threads, "nproc": os.cpu_count(), "cpu": platform.processor() or
           platform.machine(), "torch": torch.__version__, "uptime_before": _uptime()}
    try:
        res["cpu_model"] = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                            if ln.startswith("model name")][0]
    except (OSError, IndexError):
        pass

    weights = args.weights or default_weights_dir()
    ens = Ensemble.load(weights)
    res["weights"] = weights
    res["members"] = len(ens)
    res["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY")
    data, ebi, z, res["inputs"] = _inputs(ens, args.dataset, args.n_infer,
                                          np.random.default_rng(0))

    res["matmul_flops_before"] = matmul_flops(torch)
    res["infer_clusters_per_s"] = _clusters_per_second(ens, ebi, z)
    loop = Ensemble(ens.models, ens.normalisation, fuse=False)
    res["infer_clusters_per_s_unfused"] = _clusters_per_second(loop, ebi, z, repeats=1)
    shape = tuple(ebi.shape[1:])
    fl = flops_per_sample(ens.models[0], (shape[2], shape[0], shape[1]))
    res["flops_per_cluster_member"] = fl
    res["flops_per_cluster"] = fl * len(ens)
    res["infer_flops_per_s"] = res["flops_per_cluster"] * res["infer_clusters_per_s"]
    res["matmul_flops_after"] = matmul_flops(torch)
    mm = max(res["matmul_flops_before"], res["matmul_flops_after"])
    res["infer_fraction_of_matmul"] = res["infer_flops_per_s"] / mm
    # the same ratio by CPU time (less sensitive to the other processes on the machine)
    cpu_mm = matmul_flops(torch, clock=time.process_time)
    res["infer_clusters_per_cpu_s"] = _cpu_rate(ens, ebi, z)
    cpu_mm = max(cpu_mm, matmul_flops(torch, clock=time.process_time))
    res["matmul_flops_per_cpu_s"] = cpu_mm
    res["infer_fraction_of_matmul_cpu"] = (res["infer_clusters_per_cpu_s"]
                                           * res["flops_per_cluster"] / cpu_mm)
    if args.micro_batches:
        res["micro_batch_rounds"] = micro_batch_rounds(
            torch, ens, ebi[:1024], z[:1024], args.micro_batches, args.rounds,
            res["flops_per_cluster"], jit=args.jit)
    if args.profile:
        res["profile"] = _profile(torch, ens, ebi[:2048], z[:2048])

    if not args.skip_training:
        train, val, res["train_data"] = _training_splits(ens, data, args.dataset, args.n_train)
        res["train_seconds_per_epoch"] = _seconds_per_epoch(train, val, args.train_epochs)
        res["train_seconds_per_epoch_per_1000"] = res["train_seconds_per_epoch"] / len(train) * 1000
        res["train_n"] = len(train)
    if args.wait_policy_check:
        print("OMP_WAIT_POLICY check (fresh child processes):", flush=True)
        res["wait_policy_check"] = wait_policy_check(args)
    res["uptime_after"] = _uptime()

    table = res.pop("profile", None)
    print(json.dumps(res, indent=1))
    if table:
        print(table)
    for name, v in res.get("micro_batch_rounds", {}).items():
        print(f"  {name:40s} {100 * v['median']:4.0f} % of the matmul CPU-time rate "
              f"(range {100 * v['min']:.0f}-{100 * v['max']:.0f} %)")
    print(f"\ninference: {res['infer_clusters_per_s']:.0f} clusters/s ({len(ens)} members, fused; "
          f"{res['infer_clusters_per_s_unfused']:.0f} unfused), "
          f"{res['flops_per_cluster'] / 1e6:.1f} MFLOP/cluster -> "
          f"{res['infer_flops_per_s'] / 1e9:.1f} GFLOP/s = "
          f"{100 * res['infer_fraction_of_matmul']:.0f}% of dense matmul "
          f"({mm / 1e9:.0f} GFLOP/s), {args.threads} threads; by CPU time "
          f"{100 * res['infer_fraction_of_matmul_cpu']:.0f}% "
          f"({res['infer_clusters_per_cpu_s']:.0f} clusters per CPU-second)")
    if "train_seconds_per_epoch" in res:
        print(f"training: {res['train_seconds_per_epoch']:.1f} s/epoch for {res['train_n']} "
              f"clusters ({res['train_seconds_per_epoch_per_1000']:.2f} s per 1000)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
