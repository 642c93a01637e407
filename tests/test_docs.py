"""Docs that must stay true to the code."""

from __future__ import annotations

import re

from dagfactory_s3.schema import reference_markdown, schema

from conftest import ROOT


def test_manifest_reference_is_generated_from_the_schema():
    """docs/manifest.md is exactly what the schema generates (regenerate: python -m dagfactory_s3.schema)."""
    assert (ROOT / "docs" / "manifest.md").read_text() == reference_markdown()


def test_every_schema_field_is_described():
    """Every field of the schema carries a description for the reference."""
    root = schema()
    fields = {**root["properties"], **root["$defs"]["task_fields"]["properties"]}
    missing = [name for name, spec in fields.items() if not spec.get("description") and "$ref" not in spec]
    assert missing == []


def test_readme_commands_exist_in_the_makefile():
    """Every `make X` the README mentions is a Makefile target."""
    readme = (ROOT / "README.md").read_text()
    targets = set(re.findall(r"^([a-z0-9-]+):", (ROOT / "Makefile").read_text(), re.M))
    mentioned = set(re.findall(r"make ([a-z0-9-]+)", readme))
    assert {"demo", "test"} <= mentioned
    assert mentioned <= targets


def test_settings_tables_are_generated_from_the_settings():
    """The sidecar's and the publisher's settings tables are what dagfactory_s3.settings renders."""
    from dagfactory_s3.publisher.cli import SETTINGS as PUBLISHER
    from dagfactory_s3.settings import markdown_table
    from dagfactory_s3.sync.main import SETTINGS as SIDECAR

    assert markdown_table(SIDECAR) in (ROOT / "sidecar" / "README.md").read_text()
    assert markdown_table(PUBLISHER) in (ROOT / "docs" / "publisher.md").read_text()
