"""Which regular expressions a param may use: those Python's backtracking engine runs in bounded time.

A param's ``pattern`` is evaluated with Python's ``re`` by ``validate``, the sidecar and the bundle
(through the manifest's rules) and by Airflow at every trigger, so ``^(a+)+$`` with a long value
stalls each of them. The pattern is parsed (``re``'s own parser) and refused when it is not anchored
with ``^`` (a search then restarts at every position) or when it can backtrack without bound:

* a variable repeat inside another (``(a+)+``, ``(a*b?)*``);
* a repeat of something that can match nothing (``(a?)+``), or of alternatives that can start with
  the same character (``(ab|ac)+``);
* two variable repeats in a row that can match the same characters with nothing between them that
  only one of them matches (``\\d+\\d+``, ``.*x.*``);
* backreferences and lookarounds.

No evaluation happens here: the verdict is read from the pattern alone, in time linear in its length.
"""

from __future__ import annotations

from typing import Any

try:  # Python 3.11+
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _sre_parse  # type: ignore[no-redef]

__all__ = ["backtracking"]

_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}
_ANY = None  # "any character" in a character set


class _Not(frozenset):  # type: ignore[type-arg]
    """Every character but these (a negated class such as ``[^,]``)."""


Chars = frozenset[int] | None


def backtracking(pattern: str) -> str | None:
    """Why ``pattern`` can backtrack without bound, or None. A pattern ``re`` cannot parse is the
    caller's to report (``re.error``)."""
    tree = list(_sre_parse.parse(pattern))
    if (
        not tree
        or _name(tree[0][0]) != "AT"
        or _name(tree[0][1]) not in ("AT_BEGINNING", "AT_BEGINNING_STRING")
    ):
        return "it does not start with '^' (a JSON Schema pattern is searched for anywhere in the value)"
    return _walk(tree, inside=False)


def _name(op: Any) -> str:
    return str(op)


def _union(a: Chars, b: Chars) -> Chars:
    if a is _ANY or b is _ANY:
        return _ANY
    if isinstance(a, _Not) or isinstance(b, _Not):
        if isinstance(a, _Not) and isinstance(b, _Not):
            return _Not(a & b) or _ANY
        negated, plain = (a, b) if isinstance(a, _Not) else (b, a)
        return _Not(negated - plain) or _ANY
    return a | b


def _overlap(a: Chars, b: Chars) -> bool:
    if a is _ANY or b is _ANY:
        return True
    if isinstance(a, _Not) or isinstance(b, _Not):
        if isinstance(a, _Not) and isinstance(b, _Not):
            return True
        negated, plain = (a, b) if isinstance(a, _Not) else (b, a)
        return bool(plain - negated)
    if a & b:
        return True
    return (_NON_ASCII in a and any(c > 127 for c in b)) or (_NON_ASCII in b and any(c > 127 for c in a))


_NON_ASCII = -1  # stands for "some character beyond ASCII" (a Unicode digit, letter or space)
_CATEGORIES = {
    "CATEGORY_DIGIT": frozenset(range(48, 58)) | {_NON_ASCII},
    "CATEGORY_WORD": frozenset([*range(48, 58), *range(65, 91), 95, *range(97, 123)]) | {_NON_ASCII},
    "CATEGORY_SPACE": frozenset([9, 10, 11, 12, 13, 32]) | {_NON_ASCII},
}
_NEGATED_CATEGORIES = {
    "CATEGORY_NOT_DIGIT": "CATEGORY_DIGIT",
    "CATEGORY_NOT_WORD": "CATEGORY_WORD",
    "CATEGORY_NOT_SPACE": "CATEGORY_SPACE",
}


def _in_set(items: list[tuple[Any, Any]]) -> Chars:
    chars: set[int] = set()
    negate = False
    for op, av in items:
        name = _name(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            chars.add(av)
        elif name == "RANGE" and av[1] - av[0] <= 512:
            chars.update(range(av[0], av[1] + 1))
        elif name == "CATEGORY" and _name(av) in _CATEGORIES:
            chars.update(_CATEGORIES[_name(av)])
        elif name == "CATEGORY" and _name(av) in _NEGATED_CATEGORIES and len(items) == 1:  # \S, \D, \W
            return _Not(_CATEGORIES[_NEGATED_CATEGORIES[_name(av)]] - {_NON_ASCII})
        else:  # a large range, a negated category among others: any character, conservatively
            return _ANY
    if negate:  # [^...]: every character but these (those beyond ASCII left out: a larger set, safely)
        return _Not(chars - {_NON_ASCII})
    return frozenset(chars)


def _item_chars(op: Any, av: Any) -> Chars:
    """Every character one item can match (not only its first)."""
    name = _name(op)
    if name == "LITERAL":
        return frozenset({av})
    if name == "NOT_LITERAL":
        return _Not({av})
    if name == "IN":
        return _in_set(av)
    if name == "AT":
        return frozenset()
    if name == "SUBPATTERN":
        return _seq_chars(av[-1])
    if name == "ATOMIC_GROUP":
        return _seq_chars(av)
    if name == "BRANCH":
        out: Chars = frozenset()
        for branch in av[1]:
            out = _union(out, _seq_chars(branch))
        return out
    if name in _REPEATS:
        return _seq_chars(av[2])
    return _ANY


def _seq_chars(seq: list[tuple[Any, Any]]) -> Chars:
    out: Chars = frozenset()
    for op, av in seq:
        out = _union(out, _item_chars(op, av))
    return out


def _first(seq: list[tuple[Any, Any]]) -> tuple[Chars, bool]:
    """The characters a sequence can start with, and whether it can match nothing."""
    chars: Chars = frozenset()
    for op, av in seq:
        first, empty = _item_first(op, av)
        chars = _union(chars, first)
        if not empty:
            return chars, False
    return chars, True


def _item_first(op: Any, av: Any) -> tuple[Chars, bool]:
    name = _name(op)
    if name in ("LITERAL", "IN", "NOT_LITERAL", "ANY"):
        return _item_chars(op, av), False
    if name == "AT":
        return frozenset(), True
    if name == "SUBPATTERN":
        return _first(av[-1])
    if name == "ATOMIC_GROUP":
        return _first(av)
    if name == "BRANCH":
        chars: Chars = frozenset()
        empty = False
        for branch in av[1]:
            first, e = _first(branch)
            chars, empty = _union(chars, first), empty or e
        return chars, empty
    if name in _REPEATS:
        first, empty = _first(av[2])
        return first, empty or av[0] == 0
    return _ANY, True


def _last(seq: list[tuple[Any, Any]]) -> Chars:
    """The characters a sequence can end with (what the next item must not match to separate it)."""
    chars: Chars = frozenset()
    for op, av in reversed(_flat(seq)):
        name = _name(op)
        if name == "AT":
            continue
        if name == "BRANCH":
            for branch in av[1]:
                chars = _union(chars, _last(list(branch)))
            return chars
        if name in _REPEATS:
            chars = _union(chars, _last(list(av[2])))
            if av[0] > 0:
                return chars
            continue
        return _union(chars, _item_chars(op, av))
    return chars


def _overlapping_branches(seq: list[tuple[Any, Any]]) -> bool:
    for op, av in seq:
        name = _name(op)
        if name == "BRANCH":
            seen: Chars = frozenset()
            for branch in av[1]:
                first, empty = _first(branch)
                if empty or _overlap(seen, first):
                    return True
                seen = _union(seen, first)
        elif name == "SUBPATTERN" and _overlapping_branches(av[-1]):
            return True
    return False


def _flat(seq: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """The sequence with its groups inlined (a group changes what is captured, not what is matched)."""
    out: list[tuple[Any, Any]] = []
    for op, av in seq:
        name = _name(op)
        if name == "SUBPATTERN":
            out += _flat(list(av[-1]))
        elif name == "ATOMIC_GROUP":
            out += _flat(list(av))
        else:
            out.append((op, av))
    return out


def _variable(op: Any, av: Any) -> bool:
    return _name(op) in _REPEATS and av[1] != av[0] and av[1] > 1


def _unbounded(op: Any, av: Any) -> bool:
    """A repeat whose count has no small bound (two of those in a row backtrack polynomially)."""
    return _variable(op, av) and av[1] > _SMALL


_SMALL = 16


def _walk(seq: list[tuple[Any, Any]], *, inside: bool) -> str | None:
    """Why this sequence (the body of a variable repeat when ``inside``) can backtrack without bound."""
    items = _flat(seq)
    previous: Chars = frozenset()  # what the last unbounded repeat ends with, while nothing separates it

    def in_a_row(first: Chars) -> bool:
        return previous is _ANY or (bool(previous) and _overlap(previous, first))

    for i, (op, av) in enumerate(items):
        name = _name(op)
        if name in ("GROUPREF", "GROUPREF_EXISTS"):
            return "it uses a backreference"
        if name in ("ASSERT", "ASSERT_NOT"):
            return "it uses a lookaround"
        if name == "BRANCH":
            for branch in av[1]:
                why = _walk(list(branch), inside=inside)
                if why:
                    return why
            if any(_has_variable(list(b)) for b in av[1]):
                if in_a_row(_item_first(op, av)[0]):
                    return _IN_A_ROW
                previous = _last([(op, av)])
            else:
                previous = _separated(previous, _item_chars(op, av))
            continue
        if name not in _REPEATS:
            previous = _separated(previous, _item_chars(op, av))
            continue
        high, body = av[1], list(av[2])
        if not _variable(op, av):  # a fixed count, or optional: two copies show a copy running into the next
            why = _walk(body * (2 if high > 1 and _has_variable(body) else 1), inside=inside)
            if why:
                return why
            if _has_variable(body):
                if in_a_row(_first(body)[0]):
                    return _IN_A_ROW
                previous = _last(body)
            else:
                previous = _separated(previous, _seq_chars(body))
            continue
        if inside:
            after = items[i + 1] if i + 1 < len(items) else None
            # an inner repeat is unambiguous when what follows it in the outer body is a character it
            # cannot match: each outer round then ends in one place
            follows = _item_chars(*after) if after is not None else _first(seq)[0]  # the next round's start
            if (after is not None and _name(after[0]) in _REPEATS) or _overlap(_last(body), follows):
                return "a repeat inside a repeat (nested quantifiers backtrack exponentially)"
        if _first(body)[1]:
            return "a repeat of something that can match nothing"
        if _overlapping_branches(body):
            return "a repeat of alternatives that can start with the same character"
        why = _walk(body, inside=True)
        if why:
            return why
        if _unbounded(op, av):
            if in_a_row(_first(body)[0]):
                return _IN_A_ROW
            previous = _last(body)
        else:
            previous = _separated(previous, _seq_chars(body))
    return None


_IN_A_ROW = (
    "two repeats in a row can match the same characters (put a character only one matches between them)"
)


def _separated(previous: Chars, chars: Chars) -> Chars:
    """After an item matching ``chars``: a character the last repeat cannot match separates it."""
    if previous is not _ANY and not previous:
        return frozenset()
    if chars is not _ANY and chars and not _overlap(previous, chars):
        return frozenset()
    return previous


def _has_variable(seq: list[tuple[Any, Any]]) -> bool:
    for op, av in seq:
        name = _name(op)
        if name in _REPEATS and av[1] != av[0] and av[1] > 1:
            return True
        if name == "SUBPATTERN" and _has_variable(list(av[-1])):
            return True
        if name == "BRANCH" and any(_has_variable(list(b)) for b in av[1]):
            return True
    return False
