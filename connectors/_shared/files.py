"""Files the hub keeps: only its own user reads them, and a name never leaves its directory.

Contracts, signed PDFs, the SQLite database and the run directory hold personal data and
keys, so every file is written 0600 in directories made 0700 (DAT-2, docs/security.md),
whatever the process umask. A path built from a value that came from outside (a case id,
a file name in a message) is resolved and must stay inside its directory (DAT-1): the
schemas refuse such values already, this is the second line.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "PathEscapeError",
    "contained",
    "ensure_run_dir",
    "private_dir",
    "write_private",
]

FILE_MODE = 0o600
DIR_MODE = 0o700


class PathEscapeError(ValueError):
    """A relative name that resolves outside its directory (``..``, an absolute path, a
    symbolic link leading out)."""


def contained(root: Path, relative: str | Path) -> Path:
    """``root / relative`` resolved, or :class:`PathEscapeError` if it leaves ``root``."""
    base = Path(root).resolve()
    if Path(relative).is_absolute():
        raise PathEscapeError("an absolute path where a name inside a directory is expected")
    path = (base / relative).resolve()
    if path == base or not path.is_relative_to(base):
        raise PathEscapeError("the name leads outside its directory")
    return path


def private_dir(path: Path) -> Path:
    """``path`` made with its missing parents, each new one and ``path`` itself 0700."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=DIR_MODE, exist_ok=True)
        os.chmod(directory, DIR_MODE)  # mkdir's mode passes through the umask
    os.chmod(path, DIR_MODE)
    return path


def ensure_run_dir(path: Path) -> Path:
    """The run directory: made 0700 when missing; an existing one is left as it is. It may
    be shared with services the deploy scripts start (the local broker's and PostgreSQL's
    data): PostgreSQL's server runs as its own user and must keep reaching its data
    directory below it. What the hub writes inside is private (:func:`write_private`)."""
    if not path.exists():
        private_dir(path)
    return path


def write_private(path: Path, content: bytes) -> None:
    """``content`` into ``path``, mode 0600, atomically (a reader never sees half a file);
    the parent directory made 0700."""
    private_dir(path.parent)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.chmod(partial, FILE_MODE)  # O_CREAT's mode only applies to a new file
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
