"""Canonical stubs: the few generated lines of Python that sit next to each manifest.

The stub contract in one place: the template (``loader/stub.py.tmpl``), the API version a stub
calls the loader with, and which versions the loader accepts (``loader/README.md``).
"""

from __future__ import annotations

import re

from dagfactory_s3.errors import ConfigError
from dagfactory_s3.naming import manifest_of

__all__ = ["API_VERSION", "SUPPORTED_APIS", "is_canonical", "render", "stub_for"]

# The ``api=`` a generated stub passes to ``load_dag``; the loader accepts every version here.
API_VERSION = 1
SUPPORTED_APIS = frozenset({1})

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.json$")


def _template() -> str:
    # Imported here, not at the top: the loader reads this module's API version on Airflow's parse
    # path, where importlib.resources (~15 ms in a fresh interpreter) is not needed.
    from importlib import resources

    return resources.files("dagfactory_s3").joinpath("loader", "stub.py.tmpl").read_text("utf-8")


def render(manifest_name: str) -> bytes:
    """The stub for the manifest file ``manifest_name`` (a bare file name), byte for byte."""
    if not _SAFE_NAME.fullmatch(manifest_name):
        raise ConfigError(
            f"{manifest_name}: manifest file name must be letters, digits, '_', '.', '-' and end in .json"
        )
    return _template().format(manifest=manifest_name, api=API_VERSION).encode("utf-8")


def stub_for(stub_name: str) -> bytes:
    """The canonical content of the stub file ``<name>.py`` (its manifest is ``<name>.json``)."""
    if not stub_name.endswith(".py"):
        raise ConfigError(f"{stub_name}: a stub file name must end in .py")
    return render(manifest_of(stub_name))


def is_canonical(stub_name: str, content: bytes) -> bool:
    """True when ``content`` is exactly what this library generates for ``stub_name``."""
    try:
        return content == stub_for(stub_name)
    except ConfigError:
        return False
