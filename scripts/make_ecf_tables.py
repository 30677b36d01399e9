#!/usr/bin/env python
"""Regenerate the shipped energy-conversion-factor table(s).

    python scripts/make_ecf_tables.py [--output astro_clustermass/data/ecf/ecf_efeds.ecsv]

The table holds ECF(z, kT, N_H) = unabsorbed flux in rest-frame 0.5-2 keV per count/s in
observed 0.2-2.3 keV, for the thermal continuum of astro_clustermass.xray.spectra folded through
the shipped eFEDS ARF (on-axis, full PSF). See astro_clustermass/ecf.py.
"""

import argparse
import datetime
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from astro_clustermass.xray import ecf, spectra  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=ecf.ECF_TABLE)
    parser.add_argument("--line-fraction", type=float, default=0.0,
                        help="line approximation: fraction of the 0.5-2 keV flux in lines")
    args = parser.parse_args(argv)
    table = ecf.make_table(progress=True, line_fraction=args.line_fraction)
    table.meta.update({
        "description": ("ECF = unabsorbed energy flux in the observed band corresponding to "
                        "rest-frame 0.5-2 keV, per count/s in observed 0.2-2.3 keV"),
        "spectrum": ("thermal bremsstrahlung, thermally averaged Born Gaunt factor; "
                     f"line_fraction={args.line_fraction}; absorption Morrison & McCammon 1983"),
        "arf": os.path.basename(spectra.ARF_PATH) + " (SPECRESP / CORRCOMB: on-axis, full PSF)",
        "generated_by": "scripts/make_ecf_tables.py",
        "date": datetime.date.today().isoformat(),
    })
    out = os.path.abspath(args.output)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(out), suffix=".ecsv")
    os.close(fd)
    try:
        table.write(tmp, format="ascii.ecsv", overwrite=True,
                    formats={"ecf": "%.6e", "z": "%.3f", "nH": "%.3e", "kT": "%.3f"})
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"wrote {out} ({len(table)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
