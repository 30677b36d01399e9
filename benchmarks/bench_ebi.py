"""Benchmark of `astro_clustermass.ebi` (figures in docs/performance.rst).

Runs, in one process on one core (set OMP/MKL threads to 1 before numpy loads):

1. an in-memory eFEDS-like event list (uniform background of 3.6 counts/arcmin^2 in
   0.2-2.3 keV, energies from the shipped eFEDS background spectrum, plus clusters:
   beta-model photons, 10 % of all photons) of ``--photons`` photons (default 1e7) and
   one of a tenth of it on a tenth of the area (same density): EBIs per second for
   ``--clusters`` cluster positions in each, and the ratio of the costs per cluster;
2. (``--memory``) peak memory of `EventList.read` on event files of ``--file-rows`` / 4
   and ``--file-rows`` rows read in chunks of ``--chunk-rows``, in memory and with the
   memory-mapped index, each in a fresh subprocess: the tracemalloc peak (numpy buffers:
   the anonymous memory that must fit in RAM) and ``VmHWM`` (peak RSS, which also counts
   the reclaimable page-cache pages of the memory-mapped files).

    OMP_NUM_THREADS=1 python benchmarks/bench_ebi.py [--photons 1e7] [--clusters 4000] [--repeat 3]
        [--memory] [--file-rows 8e6] [--chunk-rows 250000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

BKG_PER_ARCMIN2 = 3.6  # 0.2-2.3 keV counts per arcmin^2 at the eFEDS depth (1.2 ks)


def _background_energies(rng, n):
    from astropy.io import fits

    from astro_clustermass.xray import spectra

    path = os.path.join(os.path.dirname(spectra.ARF_PATH), "efeds_background_spectrum.fits")
    with fits.open(path) as h:
        d = h[1].data
        ch = np.asarray(d["CHANNEL"], float)
        cts = np.asarray(d["COUNTS"], float)
    e = (ch - 0.5) * 10.0  # eV, 10 eV channels
    sel = (e >= 200) & (e < 2300)
    prob = cts[sel] / cts[sel].sum()
    return (rng.choice(e[sel], n, p=prob) + rng.uniform(-5, 5, n)).astype(np.float32)


def make_events(n_photons, seed=0, cluster_fraction=0.1):
    """eFEDS-like photons (RA, DEC, PI) on a square patch at the equator; cluster centres."""
    rng = np.random.default_rng(seed)
    area_deg2 = n_photons * (1 - cluster_fraction) / (BKG_PER_ARCMIN2 * 3600.0)
    side = np.sqrt(area_deg2)
    n_bkg = int(n_photons * (1 - cluster_fraction))
    ra = rng.uniform(10.0, 10.0 + side, n_bkg)
    dec = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(-side / 2)),
                                           np.sin(np.radians(side / 2)), n_bkg)))
    n_cl_ph = n_photons - n_bkg
    n_cl = max(1, n_cl_ph // 300)
    cra = rng.uniform(10.2, 10.0 + side - 0.2, n_cl)
    cdec = rng.uniform(-side / 2 + 0.2, side / 2 - 0.2, n_cl)
    which = rng.integers(0, n_cl, n_cl_ph)
    rc = 30.0 / 3600  # beta = 2/3 model, core radius 30", truncated at 600"
    u = rng.random(n_cl_ph) * (1 - 1 / np.sqrt(1 + 20.0 ** 2))
    r = rc * np.sqrt(1 / (1 - u) ** 2 - 1)
    phi = rng.uniform(0, 2 * np.pi, n_cl_ph)
    pra = cra[which] + r * np.cos(phi) / np.cos(np.radians(cdec[which]))
    pdec = cdec[which] + r * np.sin(phi)
    pi = np.concatenate([_background_energies(rng, n_bkg),
                         rng.uniform(300, 2300, n_cl_ph).astype(np.float32)])
    return (np.concatenate([ra, pra]), np.concatenate([dec, pdec]), pi), (cra, cdec), side


def bench_speed(n_photons, n_clusters, seed=0, repeat=3):
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    from astro_clustermass.ebi import energy_band_images
    from astro_clustermass.io.events import EventList

    (ra, dec, pi), (cra, cdec), side = make_events(int(n_photons), seed)
    t0 = time.perf_counter()
    ev = EventList(Table({"RA": ra, "DEC": dec, "PI": pi}))
    t_index = time.perf_counter() - t0
    del ra, dec, pi
    rng = np.random.default_rng(seed + 1)
    k = rng.integers(0, len(cra), n_clusters)  # cluster positions (repeats allowed)
    centers = SkyCoord(cra[k] * u.deg, cdec[k] * u.deg)
    energy_band_images(ev, centers[:64])  # warm-up
    walls, cpus = [], []
    for _ in range(repeat):  # median of ``repeat`` timings
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        images = energy_band_images(ev, centers, progress=False)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - cpu0)
    wall, cpu = float(np.median(walls)), float(np.median(cpus))
    counts_per_ebi = float(np.mean(images.sum(axis=(1, 2, 3))))
    return {"photons": len(ev), "area_deg2": side ** 2, "index_s": t_index,
            "clusters": n_clusters, "wall_s": wall, "cpu_s": cpu,
            "ebi_per_s": n_clusters / wall, "us_per_ebi": 1e6 * wall / n_clusters,
            "mean_counts_in_ebi": counts_per_ebi}


def write_event_file(path, n_rows, seed=0):
    """An eSASS-like EVENTS file of ``n_rows`` rows (5 % fail FLAG/PAT_TYP)."""
    from astropy.io import fits

    (ra, dec, pi), _, _ = make_events(int(n_rows), seed)
    rng = np.random.default_rng(seed + 2)
    n = len(ra)
    flag = np.where(rng.random(n) < 0.03, 0x10, 0).astype(np.int32)
    pat = np.where(rng.random(n) < 0.02, -1, rng.integers(1, 5, n)).astype(np.int16)
    cols = [fits.Column("TIME", "D", unit="s", array=rng.uniform(0, 1e6, n)),
            fits.Column("RA", "D", unit="deg", array=ra),
            fits.Column("DEC", "D", unit="deg", array=dec),
            fits.Column("PI", "E", unit="eV", array=pi),
            fits.Column("FLAG", "J", array=flag),
            fits.Column("PAT_TYP", "I", array=pat),
            fits.Column("TM_NR", "B", array=rng.integers(1, 8, n).astype(np.uint8))]
    fits.BinTableHDU.from_columns(cols, name="EVENTS").writeto(path, overwrite=True)


def _vm_hwm_mib():
    """Peak resident set size of this process [MiB] (``VmHWM``; reset by exec, unlike
    ``ru_maxrss``, which a child inherits from its forking parent on Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _memory_child(path, chunk_rows, memmap):
    import tracemalloc

    import astropy.io.fits  # noqa: F401 - imports count in the baseline, not the reading

    base = _vm_hwm_mib()
    tracemalloc.start()
    from astro_clustermass.io.events import EventList

    t0 = time.perf_counter()
    ev = EventList.read(path, chunk_rows=chunk_rows, memmap=memmap)
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    rss = _vm_hwm_mib()
    print(f"RESULT {len(ev)} {peak / 2**20:.1f} {rss - base:.1f} {rss:.1f} {dt:.2f}")


def bench_memory(n_rows, chunk_rows, workdir):
    """Peak memory of `EventList.read` on one event file of ``n_rows`` rows."""
    path = os.path.join(workdir, "bench_ebi_events.fits")
    write_event_file(path, n_rows)
    size = os.path.getsize(path) / 2**20
    rows = []
    for memmap in (False, True):
        code = (f"import sys; sys.path.insert(0, {os.getcwd()!r}); from benchmarks.bench_ebi "
                f"import _memory_child; _memory_child({path!r}, {chunk_rows:d}, {memmap!r})")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout
        line = next(x for x in out.splitlines() if x.startswith("RESULT"))
        n, peak, drss, rss, dt = line.split()[1:]
        rows.append((memmap, int(n), float(peak), float(drss), float(rss), float(dt)))
    os.remove(path)
    return size, rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photons", type=float, default=1e7)
    ap.add_argument("--clusters", type=int, default=4000)
    ap.add_argument("--repeat", type=int, default=3, help="timings per size (median)")
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--file-rows", type=float, default=8e6)
    ap.add_argument("--chunk-rows", type=int, default=250_000)
    ap.add_argument("--workdir", default=".")
    args = ap.parse_args(argv)
    small = bench_speed(args.photons / 10, args.clusters, repeat=args.repeat)
    big = bench_speed(args.photons, args.clusters, repeat=args.repeat)
    for r in (small, big):
        print(f"{r['photons']:>10d} photons on {r['area_deg2']:7.1f} deg2 (index {r['index_s']:.2f}"
              f" s): {r['clusters']} EBIs in {r['wall_s']:.2f} s wall / {r['cpu_s']:.2f} s CPU"
              f" = {r['ebi_per_s']:.0f} EBI/s ({r['us_per_ebi']:.0f} us each; mean "
              f"{r['mean_counts_in_ebi']:.0f} smoothed counts per EBI)")
    print(f"cost per EBI, {big['photons']:.0e} / {small['photons']:.0e} photons: "
          f"{big['us_per_ebi'] / small['us_per_ebi']:.2f}")
    if args.memory:
        # two file sizes: with the memory-mapped index the peak should not grow with the file
        for n_rows in (int(args.file_rows) // 4, int(args.file_rows)):
            size, rows = bench_memory(n_rows, args.chunk_rows, args.workdir)
            print(f"event file: {n_rows} rows, {size:.0f} MiB; chunk {args.chunk_rows} rows")
            for memmap, n, peak, drss, rss, dt in rows:
                print(f"  EventList.read memmap={memmap!s:5}: {n} photons kept, {dt:.1f} s, "
                      f"tracemalloc peak {peak:.0f} MiB, peak RSS {rss:.0f} MiB "
                      f"(+{drss:.0f} MiB over the interpreter with astropy loaded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
