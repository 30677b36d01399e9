"""`estimate_catalog` / ``astro-clustermass run`` under concurrency, kills and bad options
(issue 19): one run per work directory, no orphan workers, bad outputs refused first."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable

from astro_clustermass.cli import main as cli_main
from astro_clustermass.io.atomic import pid_alive
from astro_clustermass.io.locks import RunLockError
from astro_clustermass.parallel import estimate_catalog

SLOW = """
import os, time
import numpy as np
from astro_clustermass import MassEstimator

class Slow(MassEstimator):
    name = "slow"
    inputs = ("z",)
    def __init__(self, seconds, pid_dir):
        self.seconds = seconds
        self.pid_dir = pid_dir
    def _estimate(self, catalog):
        open(os.path.join(self.pid_dir, str(os.getpid())), "w").close()
        time.sleep(self.seconds)
        n = len(catalog)
        return np.full(n, 14.0), np.full(n, 0.2), np.ones(n, bool), np.full(n, "")
"""


def _catalog(n=6):
    # one cluster per 3-degree tile
    return QTable({"RA": np.arange(n) * 20.0 * u.deg, "DEC": np.zeros(n) * u.deg,
                   "z": np.full(n, 0.3)})


def _driver(tmp_path, seconds, scheduler, extra=""):
    (tmp_path / "slowmod.py").write_text(SLOW)
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir(exist_ok=True)
    _catalog().write(tmp_path / "cat.fits", overwrite=True)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from slowmod import Slow
        from astro_clustermass.parallel import estimate_catalog
        estimate_catalog({str(tmp_path / 'cat.fits')!r}, [Slow({seconds}, {str(pid_dir)!r})],
                         tile_size=3.0, scheduler={scheduler!r}, workers=2,
                         output={str(tmp_path / 'out.fits')!r}, progress=False{extra})
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), str(tmp_path)]))
    return subprocess.Popen([sys.executable, "-c", script], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE), pid_dir


def _wait_for(condition, seconds=60):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_second_run_on_the_same_output_is_refused(tmp_path):
    proc, pid_dir = _driver(tmp_path, 30, "synchronous")
    lock = tmp_path / "out.fits.tiles" / "run.lock"
    try:
        assert _wait_for(lambda: any(pid_dir.iterdir())), proc.stderr.read()
        holder = json.loads(lock.read_text())
        assert holder["pid"] == proc.pid
        with pytest.raises(RunLockError, match=f"pid {proc.pid}"):
            estimate_catalog(_catalog(), [], output=tmp_path / "out.fits", tile_size=3.0,
                             progress=False)
        rc = cli_main(["run", str(tmp_path / "cat.fits"), "-o", str(tmp_path / "out.fits"),
                       "-e", "lx-chiu22", "--no-progress"])
        assert rc == 1
    finally:
        proc.kill()
        proc.wait()
    # the killed run's lock is stale (its pid is dead): the next run takes over
    assert lock.exists()
    out = estimate_catalog(_catalog(), [], output=tmp_path / "out.fits", tile_size=3.0,
                           progress=False)
    assert len(out) == 6 and not lock.exists()


def test_workers_die_with_a_killed_driver(tmp_path):
    """``--scheduler processes``: kill -9 of the driver leaves no worker writing tiles."""
    proc, pid_dir = _driver(tmp_path, 4, "processes")
    try:
        assert _wait_for(lambda: len(list(pid_dir.iterdir())) >= 2, 120), proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    workers = [int(p.name) for p in pid_dir.iterdir()]
    assert proc.pid not in workers
    assert _wait_for(lambda: not any(pid_alive(w) for w in workers), 10), workers
    def tiles():
        return sorted(str(p) for p in (tmp_path / "out.fits.tiles").rglob("tile_*"))

    before = tiles()
    time.sleep(5)  # longer than a tile takes: a surviving worker would have written one
    assert tiles() == before == []


def test_tile_size_zero_and_bad_numbers_are_refused(tmp_path, capsys):
    src = tmp_path / "cat.fits"
    _catalog().write(src)
    for option, value in (("--tile-size", "0"), ("--tile-size", "-3"), ("--workers", "0"),
                          ("--timeout", "0")):
        with pytest.raises(SystemExit) as exc:
            cli_main(["run", str(src), "-o", str(tmp_path / "o.fits"), option, value])
        assert exc.value.code == 2
        assert "greater than 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="tile_size"):
        estimate_catalog(_catalog(), [], tile_size=0)


@pytest.mark.parametrize("suffix", [".txt", ".asdf", ".vot"])
def test_unwritable_output_format_is_refused_before_any_tile(tmp_path, capsys, suffix):
    src = tmp_path / "cat.fits"
    _catalog().write(src)
    out = tmp_path / f"o{suffix}"
    rc = cli_main(["run", str(src), "-o", str(out), "-e", "lx-chiu22", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and out.name in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.fits"]  # no tiles either


def test_overwrite_never_replaces_special_files_through_the_cli(tmp_path, capsys):
    src = tmp_path / "cat.fits"
    QTable({"z": [0.1, 0.3], "LX": [1e43, 1e44] * u.erg / u.s}).write(src)
    fifo = tmp_path / "out.fits"
    os.mkfifo(fifo)
    for command in ("estimate", "run"):
        rc = cli_main([command, str(src), "-o", str(fifo), "-e", "lx-chiu22", "--overwrite"]
                      + (["--no-progress"] if command == "run" else []))
        assert rc == 1 and "FIFO" in capsys.readouterr().err
        assert fifo.is_fifo()
    # a symlink is written through: the link is kept
    real = tmp_path / "real.fits"
    real.write_bytes(b"old")
    link = tmp_path / "link.fits"
    link.symlink_to(real)
    assert cli_main(["estimate", str(src), "-o", str(link), "-e", "lx-chiu22",
                     "--overwrite"]) == 0
    assert link.is_symlink() and len(QTable.read(real)) == 2
    # missing directory and link loops are named as such
    rc = cli_main(["estimate", str(src), "-o", str(tmp_path / "nodir" / "o.fits"), "-e",
                   "lx-chiu22"])
    assert rc == 1 and "nodir' does not exist" in capsys.readouterr().err
    loop = tmp_path / "loop.fits"
    loop.symlink_to(loop)
    assert cli_main(["estimate", str(loop), "-o", str(tmp_path / "o.fits")]) == 1
    assert "loop" in capsys.readouterr().err
    assert cli_main(["estimate", str(src), "-o", str(loop), "-e", "lx-chiu22"]) == 1
    assert "loop" in capsys.readouterr().err
