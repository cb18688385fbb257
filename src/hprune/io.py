"""Atomic file writes: a crash or a bad input never leaves a half-written artifact behind."""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike, *, folder: bool = False):
    """Yield a temporary path beside `path` (a new empty folder with `folder`); rename it onto `path` only if
    the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        tmp = tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.chmod(tmp, 0o777 & ~_UMASK)
    else:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts are meant to be shared
    try:
        yield Path(tmp)
        if not folder:
            _fsync(tmp)  # the bytes reach the disk before the name does
        os.replace(tmp, path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
        elif os.path.exists(tmp):
            os.unlink(tmp)


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
    from .errors import HpruneError

    if folder.exists() and not folder.is_dir():
        raise HpruneError(f"output folder {folder} is a file, not a folder; choose another --out")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / ".write-test"):
            pass
        (folder / ".write-test").unlink(missing_ok=True)  # a second process may have removed it
    except OSError as e:
        raise HpruneError(f"output folder {folder} is not writable ({why_not_writable(folder, e)}); choose another --out") from None


def why_not_writable(path: Path, error: OSError) -> str:
    """The reason to show for a failed write under `path`: a file standing where a folder must be, or the OS's words."""
    blocker = next((p for p in Path(path).parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        return f"{blocker} is a file"
    return error.strerror or str(error)


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
