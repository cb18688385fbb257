"""Atomic file writes: a crash, a signal, a full disk or a bad input never leaves a half-written artifact
behind; a refused write is one HpruneError naming the file, the reason and the fix. And the checksums that
tell a file hprune wrote from one cut short or changed since."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager, suppress
from pathlib import Path

from .errors import HpruneError


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike, *, folder: bool = False):
    """Yield a temporary path beside `path` (a new empty folder with `folder`); rename it onto `path` only if
    the block succeeds. The folder `path` goes in must exist: a folder removed under a running job is an
    error, not silently made again. SIGINT and SIGTERM wait until the write is done or undone."""
    path = Path(path)
    with signals_held():
        try:
            if folder:
                tmp = tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
                os.chmod(tmp, 0o777 & ~_UMASK)
            else:
                fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
                os.close(fd)
                os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts are meant to be shared
        except OSError as e:
            raise storage_error(path, e) from None
        try:
            yield Path(tmp)
            if not folder:
                _fsync(tmp)  # the bytes reach the disk before the name does
            os.replace(tmp, path)
        except OSError as e:
            raise storage_error(path, e) from None
        finally:
            with suppress(OSError):  # a read-only or removed folder: nothing was left there
                if os.path.isdir(tmp):
                    shutil.rmtree(tmp)
                elif os.path.exists(tmp):
                    os.unlink(tmp)


@contextmanager
def atomic_file(path: str | os.PathLike):
    """`atomic_path` with the temporary file open for binary writing. A writer that reports a failed write
    as its own error (torch.save: a RuntimeError from its zip writer) still ends as the OS's error (or the
    KeyboardInterrupt that stopped it)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        stream = _KeepsWriteError(f)
        try:
            yield stream
        except Exception:
            if stream.error is not None:
                raise stream.error from None
            raise


class _KeepsWriteError:
    def __init__(self, f):
        self.file, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except BaseException as e:  # the OS's error, or Ctrl-C outside the command (a library user's)
            self.error = e
            raise

    def __getattr__(self, name):
        return getattr(self.file, name)


_writes_in_progress = 0
_deferred_stop: BaseException | None = None


@contextmanager
def signals_held():
    """Hold SIGINT and SIGTERM back while a file is written, so that an interruption lands between writes,
    never inside one: the OS holds back the signals that arrive now (main thread only: Python runs signal
    handlers there; a worker process without handlers dies only once its write is done), and
    `stop_at_safe_point` defers the stop of a handler that Python runs now for a signal that came just before."""
    global _writes_in_progress, _deferred_stop
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    _writes_in_progress += 1
    try:
        yield
    finally:
        _writes_in_progress -= 1
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        if not _writes_in_progress and _deferred_stop is not None:
            stop, _deferred_stop = _deferred_stop, None
            raise stop


def stop_at_safe_point(stop: BaseException) -> None:
    """For a signal handler: raise `stop` now, or at the end of the file write in progress."""
    global _deferred_stop
    if _writes_in_progress:
        _deferred_stop = stop
    else:
        raise stop


# The OS's refusals that a user can act on: what to say, and what to do about it.
_STORAGE_ERRORS = {
    errno.ENOSPC: ("no space left on the device", "free space or choose another --out"),
    errno.EDQUOT: ("disk quota exceeded", "free space or choose another --out"),
    errno.EACCES: ("permission denied", "make the folder writable or choose another --out"),
    errno.EPERM: ("operation not permitted", "make the folder writable or choose another --out"),
    errno.EROFS: ("read-only file system", "choose another --out"),
    errno.ENOENT: ("its folder was removed", "run the same command again, or choose another --out"),
}


def storage_error(path: Path, error: OSError) -> HpruneError:
    """The one line for a write the OS refused: `could not write PATH (reason); fix`."""
    blocker = _file_in_the_way(path)
    if blocker is not None:
        reason, fix = f"{blocker} is a file", "choose another --out"
    else:
        reason, fix = _STORAGE_ERRORS.get(error.errno, (error.strerror or str(error), "check the disk, or choose another --out"))
    return HpruneError(f"could not write {path} ({reason}); {fix}")


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# What atomic_path leaves behind when the process is killed mid-write: `.{stem}.{8 random}.tmp{suffix}`.
_STALE_TEMP = re.compile(r"^\..*\.[a-z0-9_]{8}\.tmp(\.[^.]*)?$")


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temporary files of writes that a killed process never finished (call under the
    folder's lock); the real files beside them are intact. Returns what was removed."""
    removed = []
    for p in [*Path(folder).glob(".*"), *Path(folder).glob("*/.*")]:
        if p.is_file() and _STALE_TEMP.match(p.name):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def ensure_writable(folder: Path) -> None:
    """Create `folder` if needed and check a file can be written there, before any long work starts."""
    if folder.exists() and not folder.is_dir():
        raise HpruneError(f"output folder {folder} is a file, not a folder; choose another --out")
    probe = folder / ".write-test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink(missing_ok=True)  # a second process may have removed it
    except OSError as e:
        with suppress(OSError):
            probe.unlink(missing_ok=True)  # created, then the disk refused its bytes
        raise HpruneError(f"output folder {folder} is not writable ({why_not_writable(folder, e)}); choose another --out") from None


def why_not_writable(path: Path, error: OSError) -> str:
    """The reason to show for a failed write under `path`: a file standing where a folder must be, or the OS's words."""
    blocker = _file_in_the_way(path)
    return f"{blocker} is a file" if blocker is not None else error.strerror or str(error)


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest existing parent of `path` when it is a file, not a folder."""
    nearest = next((p for p in Path(path).parents if p.exists()), None)
    return nearest if nearest is not None and not nearest.is_dir() else None


def file_digest(path: str | os.PathLike) -> dict:
    """What the manifest records of a file it lists: its size and sha256."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"size": os.path.getsize(path), "sha256": h.hexdigest()}


def file_problem(path: Path, recorded: dict) -> str | None:
    """Why the file at `path` is not the one recorded (its digest), or None when it is."""
    if not path.is_file():
        return f"{path} is missing"
    size = path.stat().st_size
    if size < recorded["size"]:
        return f"{path} is truncated or changed ({size} of {recorded['size']} bytes)"
    if size != recorded["size"] or file_digest(path)["sha256"] != recorded["sha256"]:
        return f"{path} was changed since hprune wrote it (its sha256 differs from the recorded one)"
    return None


def changed_files(folder: Path, recorded: dict[str, dict]) -> list[str]:
    """A line for every file of `recorded` (path in `folder` -> digest) that is missing, truncated or changed."""
    return [problem for name, digest in recorded.items() if (problem := file_problem(Path(folder) / name, digest))]


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
