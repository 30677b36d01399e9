"""Catalogue-scale benchmark of `astro_clustermass.parallel.estimate_catalog`.

Usage::

    python benchmarks/bench_parallel.py [--n 12247] [--workers 1 2] [--scheduler processes]
                                        [--tile-size 8] [--dir /tmp/acm_bench] [--json out.json]

Makes an eRASS1-sized synthetic survey (`synthetic_survey`, below: documented, not the
package simulator, which is separate work), then runs the whole chain (event files ->
tile event selection -> every estimator -> columns -> atomic output) once per worker
count, and reports wall time, clusters per second, and the peak resident memory of the
driver and of every worker process (sampled with psutil every 0.1 s, children included),
and the CPU time of the driver and its finished child processes (``resource``).

Estimators: ``lx-chiu22`` and ``cr-erass1`` (catalogue columns) and ``aperture-rate``
(`ApertureRate`, below), which reads the photons of every cluster from the tile's
event file (a 60" aperture and a 300-600" background annulus, i.e. the same 1200" stamp
an EBI covers) and turns the net rate into a mass with the ``cr-erass1`` relation. When
the package's EBI builder (`astro_clustermass.ebi`) and the CNN are available,
``--cnn`` adds ``cnn-ensemble`` fed with the same tile event files.

Synthetic survey (`synthetic_survey`): clusters uniform on the sky within
``dec_range`` and RA 180-360 deg (about the eRASS1 half sky), z uniform 0.05-1.0,
log10 M500c uniform 13.5-15.0, L_X from the lx-chiu22 median with 0.2 dex scatter,
count rates from L_X with a fixed flux-to-rate factor (1 ct/s per 1e-12 erg/s/cm^2,
the order of eROSITA's 0.2-2.3 keV ECF), 10% rate errors. Photons: only the 1200" x
1200" stamps around clusters are simulated (DESIGN.md allows this), each with the eFEDS
background (2.4 photons/arcmin^2 at 1.2 ks, 0.2-2.3 keV) and Poisson(rate x 1200 s)
cluster photons with Gaussian positions (sigma 30"); PI uniform 200-2300 eV; event files
hold the stamps of the clusters in 8 x 8 deg patches (columns RA, DEC, PI, TIME;
extension EVENTS, TELESCOP = eROSITA).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from astro_clustermass.core import MassEstimator

T_EXP = 1200.0            # s
BKG_PER_ARCMIN2 = 2.4     # photons / arcmin^2 in the stamp (0.2-2.3 keV, 1.2 ks)
STAMP_HALF = 600.0        # arcsec


# -- an event-based estimator ------------------------------------------------------------
def _read_events(events):
    """RA, Dec [deg] of the photons: an EventList (what factories get) or event files."""
    from astro_clustermass.io.events import as_event_list

    ev = as_event_list(events)
    return np.asarray(ev.ra, float), np.asarray(ev.dec, float)


def _unit_vectors(ra, dec):
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


_RELATION = []


def _relation():
    """The cr-erass1 relation, loaded once per process (loading builds a cosmology)."""
    if not _RELATION:
        from astro_clustermass.relations.base import load_relation

        _RELATION.append(load_relation("cr-erass1"))
    return _RELATION[0]


class ApertureRate(MassEstimator):
    """Net photon rate in a 60" aperture (background from 300-600") -> cr-erass1 mass.

    A stand-in event-based estimator for benchmarks and tests: it reads photons
    within the same 1200" stamp an EBI covers.
    """

    name = "aperture-rate"
    inputs = ("z", "RA", "DEC")

    def __init__(self, events=None, t_exp=T_EXP):
        self.events = events
        self.t_exp = float(t_exp)

    def parameters(self):
        return {"t_exp": self.t_exp, "aperture_arcsec": 60.0,
                "annulus_arcsec": [300.0, 600.0]}

    def _estimate(self, view):
        from scipy.spatial import cKDTree

        n = len(view)
        if self.events is None:
            raise ValueError("aperture-rate needs events=")
        ra_e, dec_e = _read_events(self.events)
        ra, dec, z = view["RA"].value, view["DEC"].value, view["z"].value
        ok = view.row_valid.copy()
        src = np.zeros(n)
        bkg = np.zeros(n)
        if len(ra_e) and ok.any():
            tree = cKDTree(_unit_vectors(ra_e, dec_e))
            centres = _unit_vectors(ra[ok], dec[ok])

            def chord(arcsec):
                return 2 * np.sin(np.radians(arcsec / 3600.0) / 2)

            n60 = tree.query_ball_point(centres, chord(60.0), return_length=True)
            n300 = tree.query_ball_point(centres, chord(300.0), return_length=True)
            n600 = tree.query_ball_point(centres, chord(600.0), return_length=True)
            src[ok] = n60
            bkg[ok] = (n600 - n300) * (60.0 ** 2) / (600.0 ** 2 - 300.0 ** 2)
        net = (src - bkg) / self.t_exp
        err = np.sqrt(src + bkg * 0.1 + 1.0) / self.t_exp
        reason = np.where(ok, "", view.row_reason).astype(object)
        positive = ok & (net > 0)
        reason[ok & ~positive] = "no net photons in the 60\" aperture"
        mu = np.full(n, np.nan)
        sig = np.full(n, np.nan)
        if positive.any():
            import astropy.units as u

            rel = _relation()
            inv = rel.invert(net[positive] * u.ct / u.s, z[positive],
                             observable_err=err[positive] * u.ct / u.s)
            mu[positive] = inv.log10_mass
            sig[positive] = inv.log10_mass_err
            good = np.asarray(inv.ok, bool)
            sub = np.flatnonzero(positive)
            positive[sub[~good]] = False
            for i, r in zip(sub, np.asarray(inv.reason, str)):
                if r:
                    reason[i] = r
        return mu, sig, positive, reason.astype(str)


def aperture_spec():
    """EstimatorSpec of `ApertureRate` (its factory takes ``events=``)."""
    from astro_clustermass.core import EstimatorSpec

    return EstimatorSpec("aperture-rate", ApertureRate, ("z", "RA", "DEC"),
                         "benchmark photon-aperture estimator")


# -- the synthetic survey -----------------------------------------------------------------
def synthetic_survey(n_clusters, outdir, seed=0, dec_range=(-80.0, 30.0),
                     ra_range=(180.0, 360.0), file_size_deg=8.0):
    """Write a synthetic catalogue and its event files; see the module docstring.

    Returns
    -------
    catalog : `~astropy.table.QTable`
    event_paths : list of str
    """
    import astropy.units as u
    from astropy.cosmology import FlatLambdaCDM
    from astropy.io import fits
    from astropy.table import QTable

    from astro_clustermass.relations.base import load_relation

    rng = np.random.default_rng(seed)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    s0, s1 = np.sin(np.radians(dec_range))
    dec = np.degrees(np.arcsin(rng.uniform(s0, s1, n_clusters)))
    ra = rng.uniform(*ra_range, n_clusters)
    z = rng.uniform(0.05, 1.0, n_clusters)
    logm = rng.uniform(13.5, 15.0, n_clusters)
    rel = load_relation("lx-chiu22")
    lx = u.Quantity(rel.mean_observable(10 ** logm * u.Msun, z)).to(u.erg / u.s)
    lx = lx * 10 ** rng.normal(0, 0.2, n_clusters)
    dl = FlatLambdaCDM(H0=70, Om0=0.3).luminosity_distance(z).to(u.cm)
    flux = (lx / (4 * np.pi * dl ** 2)).to_value(u.erg / u.s / u.cm ** 2)
    rate = flux / 1e-12
    catalog = QTable({
        "ID": np.arange(n_clusters), "RA": ra * u.deg, "DEC": dec * u.deg, "z": z,
        "LX": lx, "LX_err": 0.1 * lx, "count_rate": rate * u.ct / u.s,
        "count_rate_err": 0.1 * rate * u.ct / u.s, "M500c": 10 ** logm * u.Msun,
    })
    # files: patches of file_size_deg in Dec x (file_size_deg / cos dec) in RA
    band = np.floor((dec + 90.0) / file_size_deg).astype(int)
    width = file_size_deg / np.cos(np.radians(np.clip(-90 + (band + 0.5) * file_size_deg,
                                                      -85, 85)))
    cell = np.floor(ra / width).astype(int)
    patch = band * 10000 + cell
    paths = []
    half = STAMP_HALF / 3600.0
    n_bkg_mean = BKG_PER_ARCMIN2 * (2 * STAMP_HALF / 60.0) ** 2
    for pid in np.unique(patch):
        members = np.flatnonzero(patch == pid)
        ras, decs = [], []
        for i in members:
            nb = rng.poisson(n_bkg_mean)
            nc = rng.poisson(max(rate[i], 0) * T_EXP)
            cosd = np.cos(np.radians(dec[i]))
            dx = np.concatenate([rng.uniform(-half, half, nb), rng.normal(0, 30 / 3600, nc)])
            dy = np.concatenate([rng.uniform(-half, half, nb), rng.normal(0, 30 / 3600, nc)])
            ras.append(np.mod(ra[i] + dx / cosd, 360.0))
            decs.append(np.clip(dec[i] + dy, -90, 90))
        r = np.concatenate(ras)
        d = np.concatenate(decs)
        n = len(r)
        cols = [fits.Column("RA", "D", unit="deg", array=r),
                fits.Column("DEC", "D", unit="deg", array=d),
                fits.Column("PI", "E", unit="eV", array=rng.uniform(200, 2300, n)
                            .astype(np.float32)),
                fits.Column("TIME", "D", unit="s", array=rng.uniform(0, 1.5e7, n))]
        hdu = fits.BinTableHDU.from_columns(cols, name="EVENTS")
        hdu.header["TELESCOP"] = "eROSITA"
        path = outdir / f"events_{pid:07d}.fits"
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)
        paths.append(str(path))
    return catalog, paths


# -- measurement ---------------------------------------------------------------------------
class PeakMemory:
    """Peak RSS of this process, of all its descendants summed, sampled every 0.1 s."""

    def __init__(self, interval=0.1):
        import psutil

        self._proc = psutil.Process()
        self.interval = interval
        self.peak_self = 0
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        import psutil

        own = self._proc.memory_info().rss
        total = own
        for child in self._proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        self.peak_self = max(self.peak_self, own)
        self.peak_total = max(self.peak_total, total)

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()


def _uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def _cpu():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=12247, help="clusters (eRASS1: 12,247)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--scheduler", default="processes",
                        help="processes, threads, local-cluster or tcp://...")
    parser.add_argument("--tile-size", type=float, default=8.0)
    parser.add_argument("--dir", default="/tmp/acm_bench_parallel")
    parser.add_argument("--cnn", action="store_true", help="add cnn-ensemble (needs ebi)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--simulated", metavar="DIR",
                        help="use the detections and event files of a realisation of "
                             "astro_clustermass.simulate in DIR instead of the synthetic survey")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)

    # Workers import the estimator from this module by name (not from __main__).
    sys.path.insert(0, str(Path(__file__).parent))
    import bench_parallel

    from astro_clustermass.esass import write_table
    from astro_clustermass.parallel import estimate_catalog

    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.simulated:
        from astro_clustermass.simulate import read_realisation

        real = read_realisation(args.simulated)
        catalog, events = real.detections, list(real.event_files)
        args.n = len(catalog)
    else:
        catalog, events = bench_parallel.synthetic_survey(
            args.n, work / f"events_{args.n}_{args.seed}", seed=args.seed)
    t_sim = time.perf_counter() - t0
    n_events = 0
    from astropy.io import fits

    for p in events:
        with fits.open(p) as h:
            n_events += h["EVENTS"].header["NAXIS2"]
    size = sum(os.path.getsize(p) for p in events)
    cat_path = work / f"catalog_{args.n}.fits"
    write_table(catalog, cat_path, overwrite=True)
    estimators = ["lx-chiu22", "cr-erass1", bench_parallel.aperture_spec()]
    if args.cnn:
        estimators.append("cnn-ensemble")
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{_cpu()}, nproc={os.cpu_count()}", "uptime_before": _uptime(),
        "source": args.simulated or "synthetic_survey",
        "n_clusters": args.n, "n_event_files": len(events), "n_events": int(n_events),
        "event_bytes": int(size), "simulation_s": round(t_sim, 1),
        "scheduler": args.scheduler, "tile_size_deg": args.tile_size,
        "estimators": [e if isinstance(e, str) else e.name for e in estimators], "runs": [],
    }
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=1))
    reference = None
    for workers in args.workers:
        out = work / f"out_{args.n}_{workers}.fits"
        tiles = work / f"tiles_{workers}"
        if out.exists():
            out.unlink()
        shutil.rmtree(tiles, ignore_errors=True)  # every run builds its event-file index
        load = _uptime()
        import resource

        r0 = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            result = estimate_catalog(cat_path, estimators, events=events,
                                      tile_size=args.tile_size, scheduler=args.scheduler,
                                      workers=workers, output=out, resume=False,
                                      workdir=tiles, progress=False)
            wall = time.perf_counter() - t0
        r1 = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        cpu = sum((b.ru_utime - a.ru_utime) + (b.ru_stime - a.ru_stime) for a, b in zip(r0, r1))
        run = {"workers": workers, "wall_s": round(wall, 2),
               "clusters_per_s": round(args.n / wall, 1),
               # CPU of this process and of its finished children (process-pool workers;
               # not of distributed workers, which are not our children at exit)
               "cpu_s": round(cpu, 1),
               "peak_rss_driver_MB": round(mem.peak_self / 2 ** 20, 1),
               "peak_rss_total_MB": round(mem.peak_total / 2 ** 20, 1),
               "tiles": result.meta["astro_clustermass_run"]["tiles"],
               "valid_fraction": {n: round(float((~result[f"M500c_{n}"].mask).mean()), 3)
                                  for n in report["estimators"]},
               "uptime": load}
        cols = [c for c in result.colnames if c.startswith("log10M500c_")]
        if reference is None:
            reference = result
        else:
            run["identical_to_first_run"] = bool(all(
                np.array_equal(np.asarray(result[c].filled(np.nan)),
                               np.asarray(reference[c].filled(np.nan)), equal_nan=True)
                for c in cols))
        report["runs"].append(run)
        print(json.dumps(run, indent=1), flush=True)
    if len(report["runs"]) > 1:
        base = report["runs"][0]["wall_s"]
        for run in report["runs"]:
            run["speedup_vs_first"] = round(base / run["wall_s"], 2)
    report["uptime_after"] = _uptime()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
