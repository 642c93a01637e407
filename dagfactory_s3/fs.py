"""Local files: writes a reader sees whole or not at all. Used by ``generate`` and the sidecar.

The temporary file lives in the destination directory (a rename across filesystems is a copy, the
lesson objinsync's comment teaches) and is named ``.<name>.<random>.tmp``: Airflow never imports it
(neither ``.py`` nor a zip), and :func:`remove_temp_files` can find leftovers of a killed writer.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "escape", "fsync_dir", "read_no_follow", "remove_temp_files"]

TEMP_SUFFIX = ".tmp"


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644, sync_dir: bool = True) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the new one, never a part.

    Temp file, fsync, rename, then fsync the directory so the rename survives a power loss.
    ``sync_dir=False`` leaves that last step to the caller (:func:`fsync_dir` once per batch).
    """
    directory = path.parent
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(directory)


def fsync_dir(directory: Path) -> None:
    """Make the renames in ``directory`` durable (best effort: some filesystems refuse it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def escape(root: Path, path: Path) -> str | None:
    """Why writing at ``path`` could land outside ``root`` (a symbolic link at or above it), or None.

    Every component from ``root`` (excluded: the operator chose it) down to ``path`` is checked with
    lstat, and the real path must stay inside the real ``root``.
    """
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            return f"{current} is a symbolic link (to {os.readlink(current)}); refusing to follow it"
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        return f"{path} resolves to {real}, outside {real_root}"
    return None


def read_no_follow(path: Path) -> bytes:
    """The bytes of ``path``; OSError (ELOOP) when ``path`` itself is a symbolic link."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def remove_temp_files(root: Path, pattern: str) -> int:
    """Delete temp files an interrupted :func:`atomic_write` left in the directories ``root.glob(pattern)``
    (never through a symbolic link)."""
    removed = 0
    for directory in root.glob(pattern):
        if escape(root, directory):
            continue
        for tmp in directory.glob(f".*{TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed += 1
    return removed


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux ``renameat2(RENAME_EXCHANGE)``): a reader sees one or the
    other, never neither. Returns False where the kernel, filesystem or libc cannot (the caller falls
    back to two renames)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not supported here
        return False
    raise OSError(errno, os.strerror(errno), str(a))
