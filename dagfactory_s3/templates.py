"""The template language of a manifest: a small checked language, never a door into Python. No Airflow.

Airflow renders an operator's templated fields with Jinja, whose sandbox still lets a template walk
from ``macros`` to whole modules (``os``, ``subprocess``), read any Variable or Connection, pull another
DAG's XComs or compute ``3**3000000``. A manifest's strings may hold only ``{{ expression }}`` where the
expression is one of (docs/manifest.md, "Templates"):

* the run's dates and ids: ``ds``, ``ds_nodash``, ``ts``, ``ts_nodash``, ``ts_nodash_with_tz``,
  ``logical_date``, ``data_interval_start``, ``data_interval_end``, the ``prev_*_success`` dates,
  ``run_id``, ``task_instance_key_str``, ``dag.dag_id``, ``task.task_id``, ``ti.task_id``,
  ``ti.dag_id``, ``ti.run_id``, ``ti.map_index``, ``ti.try_number``, ``dag_run.run_id``,
  ``dag_run.run_type``, ``dag_run.logical_date``; a date's ``year`` ... ``second`` and its methods
  ``strftime``, ``isoformat``, ``format``, ``add``, ``subtract``, ``start_of``, ``end_of``,
  ``in_timezone`` with literal arguments;
* ``params.<name>`` of a parameter the DAG declares (then ``[key]``/``.key`` into its value);
* ``macros.ds_add(date, days)`` and ``macros.ds_format(date, input_format, output_format)``;
* ``ti.xcom_pull(task_ids=..., key=..., map_indexes=..., default=...)`` of tasks **of the same DAG**
  (``task_ids`` literal; never ``dag_id`` or ``run_id``);
* ``var.value.<name>``, ``var.json.<name>`` and ``conn.<name>.<host|port|login|password|schema|
  conn_type|extra_dejson>`` of Variables and Connections granted to the package;
* ``dag_run.conf`` (``[key]``, ``.key``, ``.get(key, default)``) only where the policy allows it;
* literals (strings without backslashes, integers, ``true``/``false``/``none``), and the filters
  ``default``, ``lower``, ``upper``, ``trim``, ``replace``, ``string``, ``int``, ``join``, ``tojson``.

No statements (``{% %}``), comments (``{# #}``), operators or arithmetic: the output of a template is
bounded by its inputs. :func:`problems` is the one checker: ``validate`` runs it in CI, the factory at
parse, and the operator again on the exact strings it is about to render in the worker.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from dagfactory_s3 import platform

__all__ = ["MAX_EXPRESSIONS", "MAX_TEMPLATE_CHARS", "Scope", "has_template", "problems", "strings"]

MAX_TEMPLATE_CHARS = 4096  # one templated string
MAX_EXPRESSIONS = 32  # {{ }} blocks in one string
_MAX_DEPTH = 4  # nested calls and lists in one expression

_MARKERS = ("{{", "{%", "{#")
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<string>'[^'\\\n]*'|"[^"\\\n]*")
    | (?P<int>-?[0-9]{1,12})
    | (?P<punct>[.,()\[\]|=])
    )""",
    re.VERBOSE,
)

DATES = frozenset(
    {
        "logical_date",
        "data_interval_start",
        "data_interval_end",
        "prev_data_interval_start_success",
        "prev_data_interval_end_success",
        "prev_start_date_success",
        "prev_end_date_success",
    }
)
STRINGS = frozenset(
    {"ds", "ds_nodash", "ts", "ts_nodash", "ts_nodash_with_tz", "run_id", "task_instance_key_str"}
)
_DATE_ATTRS = frozenset({"year", "month", "day", "hour", "minute", "second"})
_DATE_METHODS = frozenset(
    {"strftime", "isoformat", "format", "add", "subtract", "start_of", "end_of", "in_timezone"}
)
_OBJECT_ATTRS = {
    "dag": frozenset({"dag_id"}),
    "task": frozenset({"task_id"}),
    "ti": frozenset({"task_id", "dag_id", "run_id", "map_index", "try_number"}),
    "task_instance": frozenset({"task_id", "dag_id", "run_id", "map_index", "try_number"}),
    "dag_run": frozenset({"run_id", "run_type", "logical_date", "conf"}),
}
_CONN_ATTRS = frozenset({"host", "port", "login", "password", "schema", "conn_type", "extra_dejson"})
_XCOM_KWARGS = frozenset({"task_ids", "key", "map_indexes", "default"})
_FILTERS = {  # name -> (min, max) literal arguments
    "default": (0, 2),
    "lower": (0, 0),
    "upper": (0, 0),
    "trim": (0, 0),
    "replace": (2, 2),
    "string": (0, 0),
    "int": (0, 1),
    "join": (0, 1),
    "tojson": (0, 0),
}


class Scope(NamedTuple):
    """What one task's templates may reach: its DAG's declared ``params`` and ``tasks``, the
    Variables and Connections of ``package`` (its own ``<package>_`` names, and what ``granted(kind,
    name)`` says the policy grants it), and ``dag_run.conf`` when ``conf`` is allowed. (A NamedTuple:
    every dag-processor child imports this module, and creating a dataclass costs ten times more.)"""

    package: str
    params: frozenset[str] = frozenset()
    tasks: frozenset[str] = frozenset()
    conf: bool = False
    granted: Callable[[str, str], bool] | None = None

    def allows(self, kind: str, name: str) -> bool:
        return platform.owns(self.package, kind, name) or (
            self.granted is not None and self.granted(kind, name)
        )


def has_template(text: str) -> bool:
    return any(m in text for m in _MARKERS)


def strings(value: Any, pointer: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON-like value (keys of objects included), with its JSON pointer."""
    if isinstance(value, str):
        yield pointer, value
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"
            if isinstance(key, str) and has_template(key):
                yield where, key
            yield from strings(item, where)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from strings(item, f"{pointer}/{i}")


def problems(text: str, scope: Scope) -> list[str]:
    """Why ``text`` is not a template of the language for ``scope`` (empty when it is)."""
    if not has_template(text):
        return []
    if len(text) > MAX_TEMPLATE_CHARS:
        return [f"a templated string is longer than {MAX_TEMPLATE_CHARS} characters"]
    if "{%" in text or "{#" in text:
        return ["template statements ({% %}) and comments ({# #}) are not allowed; use {{ expression }}"]
    found: list[str] = []
    blocks = 0
    rest = text
    while "{{" in rest:
        start = rest.index("{{")
        end = rest.find("}}", start + 2)
        if end < 0:
            return ["'{{' without its '}}'"]
        blocks += 1
        if blocks > MAX_EXPRESSIONS:
            return [f"more than {MAX_EXPRESSIONS} template expressions in one string"]
        expression = rest[start + 2 : end]
        try:
            _Parser(expression, scope).check()
        except _Refused as exc:
            found.append(f"template {{{{{expression}}}}}: {exc}")
        rest = rest[end + 2 :]
    return found


class _Refused(Exception):
    pass


class _Token(NamedTuple):
    kind: str
    text: str


def _tokens(expression: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(expression):
        if expression[pos:].strip() == "":
            break
        m = _TOKEN.match(expression, pos)
        if not m:
            bad = expression[pos:].strip()[:20]
            raise _Refused(
                f"{bad!r} is not part of the template language (names, literals, '.', '[ ]', calls, '|' filters)"
            )
        kind = m.lastgroup or ""
        out.append(_Token(kind, m.group(kind)))
        pos = m.end()
    return out


_LITERAL_NAMES = {"true", "false", "none", "True", "False", "None"}


class _Parser:
    """A recursive-descent check of one expression: ``value ('|' filter)*``."""

    def __init__(self, expression: str, scope: Scope) -> None:
        self.tokens = _tokens(expression)
        self.i = 0
        self.scope = scope

    # -- tokens ---------------------------------------------------------------------------------

    def peek(self, text: str | None = None) -> _Token | None:
        tok = self.tokens[self.i] if self.i < len(self.tokens) else None
        if tok is not None and text is not None and tok.text != text:
            return None
        return tok

    def take(self, kind: str | None = None, text: str | None = None) -> _Token:
        tok = self.peek()
        if tok is None or (kind and tok.kind != kind) or (text and tok.text != text):
            want = repr(text) if text else (kind or "more")
            got = repr(tok.text) if tok else "the end"
            raise _Refused(f"expected {want}, found {got}")
        self.i += 1
        return tok

    # -- grammar --------------------------------------------------------------------------------

    def check(self) -> None:
        if not self.tokens:
            raise _Refused("empty expression")
        self.value(0)
        while self.peek("|"):
            self.take()
            self.filter()
        if self.peek() is not None:
            raise _Refused(f"unexpected {self.peek().text!r}")  # type: ignore[union-attr]

    def filter(self) -> None:
        name = self.take("name").text
        if name not in _FILTERS:
            raise _Refused(f"filter {name!r} is not allowed; allowed: {', '.join(sorted(_FILTERS))}")
        low, high = _FILTERS[name]
        args = 0
        if self.peek("("):
            self.take()
            while not self.peek(")"):
                self.literal()
                args += 1
                if not self.peek(")"):
                    self.take(text=",")
            self.take(text=")")
        if not low <= args <= high:
            raise _Refused(f"filter {name!r} takes {low}-{high} literal argument(s)")

    def literal(self) -> None:
        tok = self.peek()
        if tok is None:
            raise _Refused("expected a literal")
        if tok.kind in ("string", "int") or (tok.kind == "name" and tok.text in _LITERAL_NAMES):
            self.i += 1
            return
        if tok.text == "[":
            self.take()
            while not self.peek("]"):
                self.literal()
                if not self.peek("]"):
                    self.take(text=",")
            self.take(text="]")
            return
        raise _Refused(f"expected a literal, found {tok.text!r}")

    def value(self, depth: int) -> None:
        """A literal, or a path from an allowed name."""
        if depth > _MAX_DEPTH:
            raise _Refused("expression nests too deeply")
        tok = self.peek()
        if tok is None:
            raise _Refused("expected a value")
        if tok.kind != "name" or tok.text in _LITERAL_NAMES:
            self.literal()
            return
        self.path(depth)

    def attr(self) -> str:
        self.take(text=".")
        name = self.take("name").text
        if name.startswith("_"):
            raise _Refused(f"attribute {name!r} is private")
        return name

    def items(self) -> None:
        """``[literal]`` and ``.key`` steps into a data value (no calls, no private names)."""
        while True:
            if self.peek("["):
                self.take()
                tok = self.take()
                if tok.kind not in ("string", "int"):
                    raise _Refused("an index is a string or integer literal")
                self.take(text="]")
            elif self.peek("."):
                self.attr()
            else:
                return
            if self.peek("("):
                raise _Refused("a call on a data value is not allowed")

    def path(self, depth: int) -> None:
        root = self.take("name").text
        s = self.scope
        if root in STRINGS:
            self.no_more(root)
        elif root in DATES:
            self.date_steps(root, depth)
        elif root == "params":
            name = self.attr_or_item("params")
            if name not in s.params:
                raise _Refused(f"params.{name} is not a parameter of this DAG")
            self.items()
        elif root == "macros":
            self.macro(depth)
        elif (
            root in ("ti", "task_instance")
            and self.peek(".")
            and self.tokens[self.i + 1 : self.i + 2] == [_Token("name", "xcom_pull")]
        ):
            self.attr()
            self.xcom_pull(depth)
            self.items()
        elif root == "dag_run" and self.tokens[self.i : self.i + 2] == [
            _Token("punct", "."),
            _Token("name", "conf"),
        ]:
            self.attr()
            if not s.conf:
                raise _Refused("dag_run.conf is not allowed by the platform policy (templates.dag_run_conf)")
            self.conf(depth)
        elif root in _OBJECT_ATTRS:
            name = self.attr() if self.peek(".") else ""
            if name not in _OBJECT_ATTRS[root] or name == "conf":
                raise _Refused(
                    f"{root}.{name or ''} is not allowed; allowed: {', '.join(sorted(_OBJECT_ATTRS[root] - {'conf'}))}"
                )
            if name == "logical_date":
                self.date_steps(f"{root}.{name}", depth)
            else:
                self.no_more(f"{root}.{name}")
        elif root == "var":
            how = self.attr()
            if how not in ("value", "json"):
                raise _Refused("use var.value.<name> or var.json.<name>")
            name = self.attr_or_item("var")
            if not s.allows("variables", name):
                raise _Refused(f"Variable {name!r} is not granted to package {s.package!r}")
            if how == "value":
                self.no_more(f"var.value.{name}")
            self.items()
        elif root == "conn":
            name = self.attr_or_item("conn")
            if not s.allows("connections", name):
                raise _Refused(f"Connection {name!r} is not granted to package {s.package!r}")
            what = self.attr()
            if what not in _CONN_ATTRS:
                raise _Refused(
                    f"conn.{name}.{what} is not allowed; allowed: {', '.join(sorted(_CONN_ATTRS))}"
                )
            if what == "extra_dejson":
                self.items()
            else:
                self.no_more(f"conn.{name}.{what}")
        else:
            raise _Refused(f"{root!r} is not a template name of this language (docs/manifest.md, Templates)")

    def attr_or_item(self, root: str) -> str:
        if self.peek("["):
            self.take()
            tok = self.take("string")
            self.take(text="]")
            return tok.text[1:-1]
        if not self.peek("."):
            raise _Refused(f"{root} needs a name")
        return self.attr()

    def no_more(self, what: str) -> None:
        tok = self.peek()
        if tok is not None and tok.text in (".", "[", "("):
            raise _Refused(f"{what} is a plain value: no attribute, index or call on it")

    def date_steps(self, what: str, depth: int) -> None:
        while self.peek("."):
            name = self.attr()
            if name in _DATE_ATTRS:
                self.no_more(f"{what}.{name}")
                return
            if name not in _DATE_METHODS:
                raise _Refused(
                    f"{what}.{name} is not allowed; allowed: {', '.join(sorted(_DATE_ATTRS | _DATE_METHODS))}"
                )
            self.call(depth, positional=2, keywords=None, literal=True)
        self.no_more(what)

    def macro(self, depth: int) -> None:
        name = self.attr()
        if name not in ("ds_add", "ds_format"):
            raise _Refused(f"macros.{name} is not allowed; allowed: macros.ds_add, macros.ds_format")
        self.call(depth, positional=2 if name == "ds_add" else 3, keywords=frozenset(), literal=False)
        self.no_more(f"macros.{name}(...)")

    def xcom_pull(self, depth: int) -> None:
        self.take(text="(")
        seen_positional = 0
        while not self.peek(")"):
            key = self.keyword()
            if key is not None:
                if key not in _XCOM_KWARGS:
                    raise _Refused(
                        f"xcom_pull({key}=...) is not allowed: a task pulls only from its own DAG run "
                        f"({', '.join(sorted(_XCOM_KWARGS))})"
                    )
                if key == "task_ids":
                    self.task_ids()
                else:
                    self.literal()
            else:
                seen_positional += 1
                if seen_positional > 1:
                    raise _Refused("xcom_pull takes task_ids as its only positional argument")
                self.task_ids()
            if not self.peek(")"):
                self.take(text=",")
        self.take(text=")")

    def keyword(self) -> str | None:
        """The name of a ``name=`` keyword argument, taken; None when the next argument is positional."""
        tok = self.peek()
        nxt = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
        if tok is None or tok.kind != "name" or nxt is None or nxt.text != "=":
            return None
        self.i += 2
        return tok.text

    def task_ids(self) -> None:
        names: list[str] = []
        if self.peek("["):
            self.take()
            while not self.peek("]"):
                names.append(self.take("string").text[1:-1])
                if not self.peek("]"):
                    self.take(text=",")
            self.take(text="]")
        else:
            names.append(self.take("string").text[1:-1])
        for name in names:
            if name not in self.scope.tasks:
                raise _Refused(f"xcom_pull names task {name!r}, which is not a task of this DAG")

    def conf(self, depth: int) -> None:
        if self.tokens[self.i : self.i + 2] == [_Token("punct", "."), _Token("name", "get")]:
            self.attr()
            self.call(depth, positional=2, keywords=frozenset(), literal=True)
        self.items()

    def call(self, depth: int, *, positional: int, keywords: frozenset[str] | None, literal: bool) -> None:
        """``(arg, ...)``: at most ``positional`` arguments, literals (or values when not ``literal``);
        keyword arguments named in ``keywords`` (``None``: any name, with an integer or string literal)."""
        self.take(text="(")
        count = 0
        while not self.peek(")"):
            key = self.keyword()
            if key is not None:
                if keywords is not None and key not in keywords:
                    raise _Refused(f"keyword argument {key!r} is not allowed here")
                self.literal()
            else:
                count += 1
                if count > positional:
                    raise _Refused(f"at most {positional} argument(s)")
                if literal:
                    self.literal()
                else:
                    self.value(depth + 1)
            if not self.peek(")"):
                self.take(text=",")
        self.take(text=")")
