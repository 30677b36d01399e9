"""A lock file that says who holds it: one catalogue-scale run per work directory.

`RunLock` creates ``run.lock`` with ``O_EXCL`` (atomic on local file systems and on NFS
v3+) holding the host, the process id and a random token. A second run on the same
work directory is refused with the first run's host and pid; a lock left by a run on
this host whose process no longer exists (killed with SIGKILL) is taken over. Workers
check the token before they write a result (`RunLock.check`), so a worker that outlives
its driver writes nothing.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from pathlib import Path

from .atomic import pid_alive

__all__ = ["RunLock", "RunLockError"]


class RunLockError(RuntimeError):
    """Another run holds the lock, or the lock this run held is gone."""


class RunLock:
    """Context manager: hold ``path`` (a lock file) for the duration of a run.

    Parameters
    ----------
    path : path-like
        The lock file (its directory must exist).
    """

    def __init__(self, path):
        self.path = Path(path)
        self.token = secrets.token_hex(8)
        self.info = {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                     "started": time.strftime("%Y-%m-%dT%H:%M:%S")}

    def _holder(self):
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def acquire(self):
        """Take the lock, or raise `RunLockError` naming the run that holds it."""
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None:  # being written, or damaged: look again
                    time.sleep(0.2)
                    holder = self._holder()
                if (holder is not None and holder.get("host") == self.info["host"]
                        and not pid_alive(int(holder.get("pid", -1)))):
                    self.path.unlink(missing_ok=True)  # its run was killed: take over
                    continue
                who = ("a run that left an unreadable lock" if holder is None else
                       f"another run (pid {holder.get('pid')} on {holder.get('host')}, "
                       f"started {holder.get('started')})")
                raise RunLockError(
                    f"{who} is using {str(self.path.parent)!r}; wait for it to finish, "
                    f"or remove {str(self.path)!r} if that run is gone") from None
            with os.fdopen(fd, "w") as fh:
                json.dump(self.info, fh)
            return self
        raise RunLockError(f"could not take the lock {str(self.path)!r}")

    def release(self):
        """Remove the lock file if it is still ours."""
        holder = self._holder()
        if holder is not None and holder.get("token") == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    @staticmethod
    def check(path, token):
        """Raise `RunLockError` unless the lock ``path`` still holds ``token``."""
        try:
            holder = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            holder = None
        if holder is None or holder.get("token") != token:
            raise RunLockError(f"the run's lock {str(path)!r} is gone or taken by another "
                               "run (its driver stopped?); not writing")
