"""Keep ``dagfactory_s3``'s bytecode cache current, as it is in an installed wheel.

``pip install`` compiles a wheel's modules, so in the Airflow image every parsing child loads
``dagfactory_s3`` from ``.pyc`` files. A development checkout can differ: with
``PYTHONDONTWRITEBYTECODE=1`` in the environment and sources touched by other work (a checkout, a
stash), the cached bytecode goes stale and every child recompiles our modules from source — a cost
the stubs would pay here and never in production. So the benchmark recompiles what is stale before
each measurement and reports anything still stale at the end.
"""

from __future__ import annotations

import compileall
import importlib.util
import os
import struct
from pathlib import Path

import dagfactory_s3

__all__ = ["ensure_compiled", "stale_modules"]

PACKAGE = Path(dagfactory_s3.__file__).resolve().parent


def ensure_compiled() -> None:
    """Write fresh ``.pyc`` files for every stale module of the package (explicit writes ignore the env)."""
    compileall.compile_dir(str(PACKAGE), quiet=2, workers=1)


def stale_modules() -> list[str]:
    """Modules whose cached bytecode is missing or does not match the source's mtime and size."""
    stale = []
    for source in sorted(PACKAGE.rglob("*.py")):
        cache = importlib.util.cache_from_source(str(source))
        try:
            header = Path(cache).read_bytes()[:16]
        except OSError:
            stale.append(str(source.relative_to(PACKAGE.parent)))
            continue
        flags, mtime, size = struct.unpack("<III", header[4:16])
        info = os.stat(source)
        if flags == 0 and (mtime, size) != (int(info.st_mtime) & 0xFFFFFFFF, info.st_size & 0xFFFFFFFF):
            stale.append(str(source.relative_to(PACKAGE.parent)))
    return stale
