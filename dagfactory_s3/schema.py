"""The JSON Schema of job manifests, shipped in the wheel, and its translation into Problems."""

from __future__ import annotations

import difflib
import functools
import json
import re
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from dagfactory_s3.errors import Problem

__all__ = ["SCHEMA_FILE", "schema", "schema_problems", "schema_text", "to_pointer"]

SCHEMA_FILE = "job-manifest.v1.json"
_UNEXPECTED = re.compile(r"\((.*) (?:was|were) unexpected\)")
_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


def schema_text() -> str:
    return resources.files("dagfactory_s3").joinpath("schemas", SCHEMA_FILE).read_text("utf-8")


@functools.cache
def schema() -> dict[str, Any]:
    return json.loads(schema_text())


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    """``pattern`` with ECMA-262 semantics for ``$``: Python's ``$`` also matches before a final
    newline, which would let ``"name\n"`` through every anchored pattern of the schema."""
    if not validator.is_type(instance, "string"):
        return
    if not re.search(pattern, instance) or (pattern.endswith("$") and instance.endswith("\n")):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_StrictValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})


@functools.cache
def _validator() -> Any:
    return _StrictValidator(schema())


def to_pointer(path: Any) -> str:
    """RFC 6901 JSON pointer of a path of keys and indexes."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _known_keys(error: ValidationError) -> list[str]:
    props = dict(error.schema.get("properties", {}))
    ref = error.schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        props.update(schema()["$defs"][ref.removeprefix("#/$defs/")].get("properties", {}))
    return sorted(props)


def _messages(error: ValidationError) -> list[tuple[str, str]]:
    """Turn one jsonschema error into (pointer, message) pairs a person can act on."""
    pointer = to_pointer(error.absolute_path)
    kind, instance = error.validator, error.instance
    if kind in ("additionalProperties", "unevaluatedProperties"):
        match = _UNEXPECTED.search(error.message)
        names = [n.strip().strip("'") for n in match.group(1).split(",")] if match else []
        known = _known_keys(error)
        out = []
        for name in names:
            hint = difflib.get_close_matches(name, known, n=1)
            fix = f"; did you mean {hint[0]!r}?" if hint else (f"; known fields: {', '.join(known)}" if known else "")
            out.append((f"{pointer}/{name}", f"unknown field {name!r}{fix}"))
        return out or [(pointer, error.message)]
    if kind == "required":
        missing = _UNEXPECTED_REQUIRED.search(error.message)
        name = missing.group(1) if missing else "?"
        return [(f"{pointer}/{name}", f"required field {name!r} is missing")]
    if kind == "type":
        return [(pointer, f"expected {error.validator_value}, got {_json_type(instance)}")]
    if kind == "oneOf" and not error.absolute_path:  # the root's tasks-or-job choice
        if not isinstance(instance, dict):
            return []  # the type error already says it all
        both = "tasks" in instance and "job" in instance
        return [(pointer, "give either 'tasks' (a list of tasks) or 'job' (the single-job shorthand)"
                 + (", not both" if both else ""))]
    if kind in ("oneOf", "anyOf") and error.context:
        # The branch that got furthest into the value is the one the author meant.
        depth = max(len(e.absolute_path) for e in error.context)
        if depth > len(error.absolute_path):
            return _messages(best_match(e for e in error.context if len(e.absolute_path) == depth))
        types = [e.validator_value for e in error.context if e.validator == "type"]
        if len(types) == len(error.context):
            return [(pointer, f"expected {' or '.join(types)}, got {_json_type(instance)}")]
        if "description" in error.schema:
            return [(pointer, f"invalid value; {error.schema['description']}")]
        return _messages(best_match(error.context))
    if kind == "pattern":
        hint = error.schema.get("description")
        if hint:
            return [(pointer, f"{instance!r} is not valid: {hint}")]
        return [(pointer, f"{instance!r} does not match {error.validator_value}")]
    if kind == "const":
        return [(pointer, f"must be {error.validator_value!r}, got {instance!r}")]
    if kind == "enum":
        return [(pointer, f"{instance!r} is not one of {', '.join(map(repr, error.validator_value))}")]
    if kind == "maxLength":
        return [(pointer, f"is {len(instance)} characters long; at most {error.validator_value} allowed")]
    if kind in ("maxItems", "maxProperties"):
        return [(pointer, f"has {len(instance)} entries; at most {error.validator_value} allowed")]
    if kind == "uniqueItems":
        return [(pointer, "entries must be unique")]
    return [(pointer, error.message)]


_UNEXPECTED_REQUIRED = re.compile(r"^'(.*)' is a required property")


def schema_problems(document: Any, file: str) -> list[Problem]:
    """Every schema violation of ``document`` as Problems (empty when it is valid)."""
    problems = []
    for error in _validator().iter_errors(document):
        for pointer, message in _messages(error):
            problems.append(Problem(file, pointer, message))
    return problems
