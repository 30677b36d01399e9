"""``astro-clustermass dataset``: simulate a training sky and build a CNN data set.

A thin layer over `astro_clustermass.cnn.training_set.make_training_set`; no torch.

Examples
--------
Ten 10-deg^2 survey fields (the user's kind of data: clusters with their real
neighbours, exposure and background), EBIs cut from each field's event file at the
detected positions::

    astro-clustermass dataset train.h5 --work-dir work/ --mode field --chunks 10 \\
        --area 10 --seed 2000 --workers 2

Stamps (cheaper per cluster, see docs/cnn.rst), 54 chunks of 400, halos above
10^13.3 Msun, a changed simulator parameter::

    astro-clustermass dataset stamps.h5 --work-dir swork/ --mode stamps --chunks 54 \\
        --set log10_mmin=13.3 --set lx_scatter_dex=0.25

A training sky whose cluster model is drawn per field from the simulator priors
(``astro_clustermass/data/cnn/simulator_priors.yaml``; every cluster carries its field's
parameters as ``sim_*`` columns, the draws are in ``WORK/prior_draws.json``)::

    astro-clustermass dataset marg.h5 --work-dir mwork/ --chunks 40 --area 20 \\
        --priors default

Interrupt it (Ctrl-C, ``touch WORK/sim/STOP``, ``--until HH:MM``) and run the same
command again to resume; ``--chunks`` may grow between runs.
"""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..catalog import EFEDS_SELECTION

    parser.add_argument("output", help="data set to write (HDF5, astro_clustermass.cnn.dataset "
                                       "format)")
    parser.add_argument("--work-dir", required=True,
                        help="simulator output and settings (resumable; keep it for reruns)")
    parser.add_argument("--mode", choices=("field", "stamps"), default="field",
                        help="field: EBIs cut from simulated survey fields (default); "
                             "stamps: from stamps around pre-selected halos")
    parser.add_argument("--chunks", type=int, required=True,
                        help="field mode: number of fields; stamps mode: chunks of 400 stamps")
    parser.add_argument("--area", type=float, default=10.0,
                        help="field mode: area of each field [deg^2] (default 10)")
    parser.add_argument("--stamps-per-realisation", type=int, default=40_000,
                        help="stamps mode: stamps per realisation (default 40000 = 100 chunks)")
    parser.add_argument("--seed", type=int, default=2000,
                        help="field / realisation k is seeded with SEED + k (default 2000)")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE", default=[],
                        help="override a SimConfig parameter (repeatable), as in "
                             "'astro-clustermass simulate'")
    parser.add_argument("--priors", default=None, metavar="FILE",
                        help="simulator priors (YAML; 'default': the shipped literature "
                             "priors): each field (stamps: each realisation) is simulated "
                             "with its own seeded draw, recorded with every cluster")
    parser.add_argument("--chunks-per-draw", type=int, default=1, metavar="N",
                        help="with --priors: N consecutive fields (realisations) share a "
                             "draw (default 1)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes (field detection tiles / stamp chunks)")
    parser.add_argument("--until", default=None, metavar="HH:MM",
                        help="start no chunk after this UTC time; the data set is built "
                             "from the chunks finished by then")
    parser.add_argument("--selection", default=EFEDS_SELECTION,
                        help=f"cluster selection (default {EFEDS_SELECTION!r})")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUTPUT even if it was not made from this work dir")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (the per-chunk lines stay)")


class _Progress:
    """One line per simulator call: chunks done, what they gave, the time left.

    A field chunk's manifest counts that field's clusters; a stamp realisation's counts
    the chunks done so far. The total is the sum of each directory's latest count.
    """

    def __init__(self, out=None):
        self.out = out
        self.prev = {}          # directory -> chunks done at its previous report
        self.selected = {}      # directory -> its latest count of selected clusters
        self.new_chunks = 0     # chunks simulated by this run
        self.seconds = 0.0

    def __call__(self, done, planned, directory, manifest, seconds):
        counts = manifest.get("counts", {})
        selected = counts.get("selected_matched", manifest.get("selected"))
        self.selected[directory] = int(selected or 0)
        total = sum(self.selected.values())
        before = self.prev.get(directory, done - 1)
        self.prev[directory] = done
        if seconds is None:
            how = "finished before"
        else:
            self.new_chunks += max(1, done - before)
            self.seconds += seconds
            how = f"{seconds:.0f} s"
        eta = ""
        if self.new_chunks and planned > done:
            eta = f", about {(planned - done) * self.seconds / self.new_chunks / 60:.0f} min left"
        print(f"[{time.strftime('%H:%M:%S')}] {directory}: chunk {done}/{planned}, "
              f"{selected} selected cluster detections here, {total} in all ({how}){eta}",
              file=self.out or sys.stdout, flush=True)


def run(args: argparse.Namespace) -> int:
    from ..utils.optional import require

    require("colossus", feature="astro-clustermass dataset (the simulator)")
    require("h5py", feature="astro-clustermass dataset (HDF5 data sets)")
    from ..cnn.training_set import make_training_set
    from .simulate import _config as simulator_config

    config = simulator_config(args.set)
    res = make_training_set(args.work_dir, args.output, mode=args.mode, chunks=args.chunks,
                            seed=args.seed, config=config, area=args.area,
                            stamps_per_realisation=args.stamps_per_realisation,
                            workers=args.workers, until=args.until,
                            selection=args.selection, progress=not args.no_progress,
                            report=_Progress(), overwrite=args.overwrite,
                            priors=args.priors, chunks_per_draw=args.chunks_per_draw)
    print(f"wrote {res['clusters']} clusters from {res['chunks_done']} of "
          f"{res['chunks_planned']} chunks to {res['path']}")
    if res["chunks_done"] < res["chunks_planned"]:
        print("stopped early: run the same command again to continue")
    return 0
