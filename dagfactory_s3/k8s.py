"""What the Kubernetes API server and the kubelet accept, for every pod field a manifest emits.

The one home of these rules: the manifest checks (``validate``, ``publish``, the loader, the sync
sidecar) call them on the manifest, and :func:`pod_problems` calls the same functions on a rendered
pod. Ported from Kubernetes' own validation (``k8s.io/apimachinery/pkg/util/validation``,
``pkg/apis/core/validation`` for pods, ``k8s.io/apimachinery/pkg/api/resource`` for quantities) and
from the image reference grammar of ``github.com/distribution/reference``, so a manifest is refused
in CI with the same reason the API server would give at 3 a.m. Where we are stricter than the API
server, the rule says why (an image the kubelet cannot pull, a Gt/Lt value no node can match).

Every check returns ``(pointer, reason)`` pairs (an *issue*), the pointer built from the one it was
given, so callers can name the manifest field or the pod field. No Airflow, no Kubernetes client.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

__all__ = [
    "INTEGER_RESOURCES",
    "QUANTITY_RE",
    "Issue",
    "affinity_issues",
    "check_config_map_key",
    "check_dns_label",
    "check_env_name",
    "check_image",
    "check_label_value",
    "check_qualified_name",
    "check_subdomain",
    "check_visible",
    "hygiene_issues",
    "image_pin_problem",
    "key_ref_issues",
    "pod_problems",
    "quantity",
    "resource_issues",
    "toleration_issues",
]

Issue = tuple[str, str]

# -- names (k8s.io/apimachinery/pkg/util/validation/validation.go)
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", re.ASCII)
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", re.ASCII)
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", re.ASCII)
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", re.ASCII)
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*", re.ASCII)
_CONFIG_MAP_KEY = re.compile(r"[-._a-zA-Z0-9]+", re.ASCII)
_INT64_MAX = 2**63 - 1


def check_dns_label(name: str, what: str) -> str | None:
    """An RFC 1123 label (namespaces, pod names): at most 63 of [a-z0-9-], alphanumeric at both ends."""
    if len(name) > 63 or not _DNS_LABEL.fullmatch(name):
        return f"{what} {name!r} is invalid: at most 63 lowercase letters, digits and '-', alphanumeric at both ends (RFC 1123 label)"
    return None


def check_subdomain(name: str, what: str) -> str | None:
    """An RFC 1123 subdomain (Secret, ConfigMap and service account names, label key prefixes)."""
    if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        return (
            f"{what} {name!r} is invalid: at most 253 characters of dot-separated parts of lowercase "
            "letters, digits and '-', each alphanumeric at both ends (RFC 1123 subdomain)"
        )
    return None


def check_qualified_name(key: str, what: str = "label key") -> str | None:
    """``[prefix/]name``: label, node-selector, annotation, toleration and topology keys."""
    parts = key.split("/")
    if len(parts) > 2:
        return f"{what} {key!r} is invalid: at most one '/' (an optional DNS subdomain prefix, then a name)"
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            return f"{what} {key!r} is invalid: the prefix before '/' must not be empty"
        if len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix):
            return f"{what} prefix {prefix!r} must be a lowercase DNS subdomain (e.g. example.com)"
    if len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        return f"{what} {key!r} is invalid: the name part must be 1-63 of [A-Za-z0-9-_.], alphanumeric at both ends"
    return None


def check_label_value(value: str, what: str = "label value") -> str | None:
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        return f"{what} {value!r} is invalid: at most 63 of [A-Za-z0-9-_.], alphanumeric at both ends"
    return None


def check_env_name(name: str) -> str | None:
    if not _ENV_NAME.fullmatch(name):
        return f"environment variable name {name!r} is invalid: letters, digits, '-', '_' and '.', not starting with a digit"
    return None


def check_config_map_key(key: str) -> str | None:
    """A Secret or ConfigMap key (IsConfigMapKey)."""
    if len(key) > 253 or not _CONFIG_MAP_KEY.fullmatch(key):
        return f"key {key!r} is invalid: at most 253 of letters, digits, '-', '_' and '.'"
    if key in (".", "..") or key.startswith(".."):
        return f"key {key!r} is invalid: it must not be '.' or start with '..'"
    return None


# -- strings: NUL, lone surrogates, invisible and bidi characters

_INVISIBLE = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})


_NUL_OR_SURROGATE = re.compile("[\0\ud800-\udfff]")


def _bad_char(text: str) -> str | None:
    """The first NUL or lone surrogate in ``text``, as U+XXXX, or None."""
    found = _NUL_OR_SURROGATE.search(text)
    return f"U+{ord(found.group()):04X}" if found else None


def check_visible(text: str, what: str) -> str | None:
    """Identifiers and image references: no control, format (bidi, zero-width) or unassigned characters."""
    if text.isascii() and text.isprintable():  # the common case, without a loop in Python
        return None
    for char in text:
        if unicodedata.category(char) in _INVISIBLE or (char.isspace() and char != " "):
            return f"{what} contains the invisible or bidi character U+{ord(char):04X}"
    return None


def hygiene_issues(value: Any, pointer: str = "") -> list[Issue]:
    """Every string (keys too) free of NUL and lone surrogates; no ``3.0`` where a count is meant.

    Kubernetes cannot pass a NUL to a process, lone surrogates cannot be encoded as UTF-8 (they
    crashed ``publish`` after it had uploaded), and every number in a manifest is a count or a
    number of seconds, which Airflow and Kubernetes take as integers only, within 64 bits.
    """
    issues: list[Issue] = []
    stack: list[tuple[Any, str]] = [(value, pointer)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            bad = _bad_char(item)
            if bad:
                issues.append((where, f"contains {bad} ({_kind(bad)}), which cannot be passed on"))
        elif isinstance(item, float):
            fix = f"write {int(item)}, not {item!r}" if item.is_integer() else f"not {item!r}"
            issues.append((where, f"must be an integer: {fix}"))
        elif isinstance(item, int) and not isinstance(item, bool) and not -(2**63) <= item < 2**63:
            # what Kubernetes, Airflow's serializer and every JSON tool here (orjson) can hold
            shown = str(item) if len(str(item)) <= 40 else f"{str(item)[:20]}... ({len(str(item))} digits)"
            issues.append((where, f"integer {shown} is out of range: from -2^63 to 2^63-1"))
        elif isinstance(item, dict):
            for key, child in item.items():
                bad = _bad_char(key)
                if bad:
                    issues.append((where, f"key {key!r} contains {bad} ({_kind(bad)})"))
                else:
                    stack.append((child, f"{where}/{_escape(key)}"))
        elif isinstance(item, list):
            stack.extend((child, f"{where}/{i}") for i, child in enumerate(item))
    return issues


def _kind(code: str) -> str:
    return "NUL" if code == "U+0000" else "a lone surrogate"


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


# -- images (github.com/distribution/reference, the grammar the kubelet's pull uses)

_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_NAME = rf"(?:{_HOST}(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?", re.ASCII)
_DIGEST_HEX = {"sha256": 64, "sha512": 128}


def _split_image(image: str) -> tuple[str, str | None, str | None]:
    rest, at, digest = image.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        return rest[:colon], rest[colon + 1 :], (digest if at else None)
    return rest, None, (digest if at else None)


def check_image(image: str) -> str | None:
    """Why ``image`` is not an image reference the kubelet can pull, or None."""
    if image != image.strip() or not image:
        return f"image {image!r} has leading or trailing whitespace"
    invisible = check_visible(image, f"image {image!r}")
    if invisible:
        return invisible
    if re.search(r"\s", image):
        return f"image {image!r} contains whitespace"
    match = _REFERENCE.fullmatch(image)
    name, tag, digest = _split_image(image)
    if match is None:
        if "::" in image.rpartition("]")[2]:  # an IPv6 registry may hold '::' inside its brackets
            return f"image {image!r} contains '::'"
        if tag == "" or image.endswith("@"):
            return f"image {image!r} has an empty tag or digest"
        if tag is not None and len(tag) > 128:
            return f"image tag in {image!r} is {len(tag)} characters long; at most 128 allowed"
        if digest is not None:
            return _digest_problem(image, digest) or f"image {image!r} is not a valid image reference"
        path = name.split("/", 1)[1] if "/" in name and _looks_like_domain(name.split("/")[0]) else name
        if path != path.lower():
            return f"image repository in {image!r} must be lowercase"
        return (
            f"image {image!r} is not a valid image reference: [registry[:port]/]repository[:tag][@digest], "
            "repository of lowercase letters, digits and separators"
        )
    if len(match["name"]) > 255:
        return f"image repository in {image!r} is longer than 255 characters"
    if match["digest"]:
        return _digest_problem(image, match["digest"])
    return None


def _looks_like_domain(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost" or first != first.lower()


def _digest_problem(image: str, digest: str) -> str | None:
    algorithm, _, hex_part = digest.partition(":")
    size = _DIGEST_HEX.get(algorithm)
    if size is None or len(hex_part) != size or not re.fullmatch(r"[0-9a-f]+", hex_part):
        return f"image digest in {image!r} must be sha256:<64 hex digits> (lowercase; or sha512:<128 hex digits>)"
    return None


def image_pin_problem(image: str) -> str | None:
    """Why ``image`` is mutable (no tag, or ``latest``, and no digest), or None."""
    _name, tag, digest = _split_image(image)
    if digest:
        return None
    if tag is None:
        return f"image {image!r} has no tag; pin a version or digest (or set allow_mutable_image: true)"
    if tag == "latest":
        return f"image tag 'latest' in {image!r} is mutable; pin a version or digest (or set allow_mutable_image: true)"
    return None


# -- quantities (k8s.io/apimachinery/pkg/api/resource/quantity.go)

QUANTITY_RE = re.compile(
    r"^(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:[eE](?P<exponent>[+-]?[0-9]+)|(?P<suffix>[numkMGTPE]|[KMGTPE]i))?$",
    re.ASCII,
)
_SUFFIX = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    None: Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    **{f"{p}i": Fraction(2 ** (10 * i)) for i, p in enumerate("KMGTPE", 1)},
}
# Resources that must be whole numbers and cannot be overcommitted (request == limit): every
# extended resource (a name with a domain prefix outside kubernetes.io).
INTEGER_RESOURCES = frozenset({"nvidia.com/gpu"})


def quantity(text: str) -> Fraction:
    """The exact value of a Kubernetes quantity. Raises ValueError naming the rule it breaks."""
    if len(text) > 64:
        raise ValueError(f"quantity {text[:20]!r}... is longer than 64 characters")
    match = QUANTITY_RE.fullmatch(text)
    if match is None or text.endswith("\n"):
        raise ValueError(
            f"quantity {text!r} is invalid: a number with an optional suffix such as 500m, 2, 1.5, 512Mi, 1Gi, 1e3"
        )
    whole, _, fraction = match["number"].partition(".")
    value = Fraction(int((whole + fraction) or "0"), 10 ** len(fraction))
    if match["exponent"] is not None:
        exponent = int(match["exponent"])
        if abs(exponent) > 40:
            raise ValueError(f"quantity {text!r} is out of range")
        value *= Fraction(10) ** exponent
    else:
        value *= _SUFFIX[match["suffix"]]
    return -value if match["sign"] == "-" else value


def resource_issues(
    requests: dict[str, Any], limits: dict[str, Any], pointer: Callable[[str, str], str]
) -> list[Issue]:
    """ValidateResourceRequirements: valid, non-negative, bounded quantities; whole numbers for
    extended resources; requests at most limits, and equal to them for extended resources.
    ``pointer(kind, name)`` names where ``kind`` ("requests"/"limits") ``name`` was written."""
    issues: list[Issue] = []
    values: dict[str, dict[str, Fraction]] = {"requests": {}, "limits": {}}
    for kind, resources in (("requests", requests), ("limits", limits)):
        for name, text in resources.items():
            where = pointer(kind, name)
            try:
                value = quantity(text)
            except ValueError as exc:
                issues.append((where, str(exc)))
                continue
            if value < 0:
                issues.append((where, f"{name} {text!r} must be greater than or equal to 0"))
            elif value > _INT64_MAX:
                issues.append((where, f"{name} {text!r} is larger than Kubernetes can hold (2^63-1)"))
            elif name in INTEGER_RESOURCES and value.denominator != 1:
                issues.append((where, f"{name} {text!r} must be a whole number"))
            else:
                values[kind][name] = value
    for name, request in values["requests"].items():
        limit = values["limits"].get(name)
        if name in INTEGER_RESOURCES:
            if name not in limits:
                issues.append(
                    (
                        pointer("limits", name),
                        f"{name} is requested, so its limit must be set (equal to the request)",
                    )
                )
            elif limit is not None and request != limit:
                issues.append(
                    (
                        pointer("requests", name),
                        f"{name} request {requests[name]!r} must equal its limit {limits[name]!r}",
                    )
                )
        elif limit is not None and request > limit:
            issues.append(
                (
                    pointer("requests", name),
                    f"{name} request {requests[name]!r} must be less than or equal to its limit {limits[name]!r}",
                )
            )
    return issues


# -- env references, tolerations


def key_ref_issues(ref: dict[str, Any], pointer: str, what: str) -> list[Issue]:
    """A secretKeyRef / configMapKeyRef: the object's name and the key in it."""
    issues = []
    reason = check_subdomain(ref.get("name", ""), f"{what} name")
    if reason:
        issues.append((f"{pointer}/name", reason))
    reason = check_config_map_key(ref.get("key", ""))
    if reason:
        issues.append((f"{pointer}/key", reason))
    return issues


_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def toleration_issues(items: list[Any], pointer: str, seconds: str = "tolerationSeconds") -> list[Issue]:
    """validateTolerations. ``seconds`` is the field's name in the caller's spelling."""
    issues: list[Issue] = []
    for i, item in enumerate(items):
        where = f"{pointer}/{i}"
        if not isinstance(item, dict):
            issues.append((where, "expected object"))
            continue
        key = item.get("key") or ""
        operator = item.get("operator") or "Equal"
        value = item.get("value") or ""
        effect = item.get("effect") or ""
        if key:
            reason = check_qualified_name(key, "toleration key")
            if reason:
                issues.append((f"{where}/key", reason))
        elif operator != "Exists":
            issues.append(
                (
                    f"{where}/operator",
                    "operator must be Exists when key is empty (which means match every taint)",
                )
            )
        if operator == "Exists" and value:
            issues.append((f"{where}/value", "value must be empty when operator is Exists"))
        elif operator == "Equal":
            reason = check_label_value(value, "toleration value")
            if reason:
                issues.append((f"{where}/value", reason))
        elif operator not in ("Equal", "Exists"):
            issues.append((f"{where}/operator", f"operator {operator!r} is not Equal or Exists"))
        if effect and effect not in _EFFECTS:
            issues.append((f"{where}/effect", f"effect {effect!r} is not one of {', '.join(_EFFECTS)}"))
        if item.get(seconds) is not None:
            count = item[seconds]
            if effect != "NoExecute":
                issues.append((f"{where}/effect", f"effect must be NoExecute when {seconds} is set"))
            if not _is_int(count) or not 0 <= count <= _INT64_MAX:
                issues.append((f"{where}/{seconds}", f"{seconds} must be an integer from 0 to 2^63-1"))
    return issues


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- affinity (validateAffinity and the label-selector rules it uses)


class _Walk:
    """Collects issues while walking an untyped affinity; a wrong type is an issue, never a crash."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, pointer: str, reason: str) -> None:
        self.issues.append((pointer, reason))

    def obj(self, value: Any, pointer: str) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.add(pointer, "expected object")
        return None

    def items(self, parent: dict[str, Any], key: str, pointer: str) -> Iterator[tuple[str, Any]]:
        """The entries of list ``parent[key]`` with their pointers (none when absent or not a list)."""
        value = parent.get(key)
        if value is None:
            return
        if not isinstance(value, list):
            self.add(f"{pointer}/{key}", "expected array")
            return
        yield from ((f"{pointer}/{key}/{i}", item) for i, item in enumerate(value))

    def strings(self, parent: dict[str, Any], key: str, pointer: str) -> list[tuple[str, str]] | None:
        out = []
        for where, item in self.items(parent, key, pointer):
            if not isinstance(item, str):
                self.add(where, "expected string")
                return None
            out.append((where, item))
        return out

    def key(self, parent: dict[str, Any], name: str, pointer: str, what: str) -> None:
        value = parent.get(name)
        if not isinstance(value, str) or not value:
            self.add(f"{pointer}/{name}", f"{what} is required")
            return
        reason = check_qualified_name(value, what)
        if reason:
            self.add(f"{pointer}/{name}", reason)

    def weight(self, term: dict[str, Any], pointer: str) -> None:
        weight = term.get("weight")
        if not _is_int(weight) or not 1 <= weight <= 100:
            self.add(f"{pointer}/weight", "weight must be an integer from 1 to 100")

    # node affinity
    def node_requirement(self, rq: Any, pointer: str, *, field: bool) -> None:
        rq = self.obj(rq, pointer)
        if rq is None:
            return
        values = self.strings(rq, "values", pointer)
        if values is None:
            return
        operator = rq.get("operator")
        if field:
            if rq.get("key") != "metadata.name":
                self.add(f"{pointer}/key", "matchFields only supports the key 'metadata.name'")
            if operator not in ("In", "NotIn"):
                self.add(f"{pointer}/operator", f"operator {operator!r} is not In or NotIn")
            elif len(values) != 1:
                self.add(f"{pointer}/values", "must have exactly one value when operator is In or NotIn")
            return
        self.key(rq, "key", pointer, "node selector key")
        if operator in ("In", "NotIn"):
            if not values:
                self.add(f"{pointer}/values", "must be given when operator is In or NotIn")
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                self.add(f"{pointer}/values", "must be empty when operator is Exists or DoesNotExist")
        elif operator in ("Gt", "Lt"):
            if len(values) != 1:
                self.add(f"{pointer}/values", "must have exactly one value when operator is Gt or Lt")
            elif not re.fullmatch(r"[+-]?[0-9]{1,18}", values[0][1], re.ASCII):
                self.add(values[0][0], f"{values[0][1]!r} must be an integer when operator is Gt or Lt")
        else:
            self.add(
                f"{pointer}/operator",
                f"operator {operator!r} is not In, NotIn, Exists, DoesNotExist, Gt or Lt",
            )

    def node_term(self, term: Any, pointer: str) -> None:
        term = self.obj(term, pointer)
        if term is None:
            return
        for where, rq in self.items(term, "matchExpressions", pointer):
            self.node_requirement(rq, where, field=False)
        for where, rq in self.items(term, "matchFields", pointer):
            self.node_requirement(rq, where, field=True)

    def node_affinity(self, value: Any, pointer: str) -> None:
        value = self.obj(value, pointer)
        if value is None:
            return
        required_key = "requiredDuringSchedulingIgnoredDuringExecution"
        if value.get(required_key) is not None:
            required = self.obj(value[required_key], f"{pointer}/{required_key}")
            if required is not None:
                terms = list(self.items(required, "nodeSelectorTerms", f"{pointer}/{required_key}"))
                if not terms and isinstance(required.get("nodeSelectorTerms", []), list):
                    self.add(
                        f"{pointer}/{required_key}/nodeSelectorTerms",
                        "must have at least one node selector term",
                    )
                for where, term in terms:
                    self.node_term(term, where)
        for where, term in self.items(value, "preferredDuringSchedulingIgnoredDuringExecution", pointer):
            term = self.obj(term, where)
            if term is not None:
                self.weight(term, where)
                if "preference" not in term:
                    self.add(f"{where}/preference", "preference is required")
                else:
                    self.node_term(term["preference"], f"{where}/preference")

    # pod (anti-)affinity
    def label_selector(self, value: Any, pointer: str) -> None:
        value = self.obj(value, pointer)
        if value is None:
            return
        labels = value.get("matchLabels")
        if labels is not None:
            labels = self.obj(labels, f"{pointer}/matchLabels")
            for key, label in (labels or {}).items():
                where = f"{pointer}/matchLabels/{_escape(key)}"
                reason = check_qualified_name(key) or (
                    check_label_value(label) if isinstance(label, str) else "expected string"
                )
                if reason:
                    self.add(where, reason)
        for where, rq in self.items(value, "matchExpressions", pointer):
            rq = self.obj(rq, where)
            if rq is None:
                continue
            self.key(rq, "key", where, "label key")
            values = self.strings(rq, "values", where)
            if values is None:
                continue
            operator = rq.get("operator")
            if operator in ("In", "NotIn"):
                if not values:
                    self.add(f"{where}/values", "must be given when operator is In or NotIn")
            elif operator in ("Exists", "DoesNotExist"):
                if values:
                    self.add(f"{where}/values", "must be empty when operator is Exists or DoesNotExist")
            else:
                self.add(
                    f"{where}/operator", f"operator {operator!r} is not In, NotIn, Exists or DoesNotExist"
                )
            for at, text in values:
                reason = check_label_value(text)
                if reason:
                    self.add(at, reason)

    def pod_term(self, term: Any, pointer: str) -> None:
        term = self.obj(term, pointer)
        if term is None:
            return
        for name in ("labelSelector", "namespaceSelector"):
            if term.get(name) is not None:
                self.label_selector(term[name], f"{pointer}/{name}")
        for where, namespace in self.strings(term, "namespaces", pointer) or []:
            reason = check_dns_label(namespace, "namespace")
            if reason:
                self.add(where, reason)
        keys: dict[str, set[str]] = {}
        for name in ("matchLabelKeys", "mismatchLabelKeys"):
            keys[name] = set()
            for where, key in self.strings(term, name, pointer) or []:
                reason = check_qualified_name(key)
                if reason:
                    self.add(where, reason)
                keys[name].add(key)
        for key in sorted(keys["matchLabelKeys"] & keys["mismatchLabelKeys"]):
            self.add(f"{pointer}/mismatchLabelKeys", f"{key!r} is also in matchLabelKeys")
        self.key(term, "topologyKey", pointer, "topologyKey")

    def pod_affinity(self, value: Any, pointer: str) -> None:
        value = self.obj(value, pointer)
        if value is None:
            return
        for where, term in self.items(value, "requiredDuringSchedulingIgnoredDuringExecution", pointer):
            self.pod_term(term, where)
        for where, term in self.items(value, "preferredDuringSchedulingIgnoredDuringExecution", pointer):
            term = self.obj(term, where)
            if term is not None:
                self.weight(term, where)
                if "podAffinityTerm" not in term:
                    self.add(f"{where}/podAffinityTerm", "podAffinityTerm is required")
                else:
                    self.pod_term(term["podAffinityTerm"], f"{where}/podAffinityTerm")


def affinity_issues(affinity: Any, pointer: str) -> list[Issue]:
    """validateAffinity: operators, values required or forbidden per operator, integer Gt/Lt values,
    weights 1-100, topology keys, label keys and values in selectors."""
    walk = _Walk()
    value = walk.obj(affinity, pointer)
    if value is not None:
        if value.get("nodeAffinity") is not None:
            walk.node_affinity(value["nodeAffinity"], f"{pointer}/nodeAffinity")
        for name in ("podAffinity", "podAntiAffinity"):
            if value.get(name) is not None:
                walk.pod_affinity(value[name], f"{pointer}/{name}")
    return walk.issues


# -- a rendered pod


def _map_issues(values: dict[str, Any], pointer: str, *, label_values: bool, what: str) -> list[Issue]:
    issues = []
    for key, value in values.items():
        where = f"{pointer}/{_escape(key)}"
        reason = check_qualified_name(key.lower() if what == "annotation key" else key, what)
        if reason is None and label_values:
            reason = check_label_value(value)
        if reason:
            issues.append((where, reason))
    return issues


def pod_problems(pod: dict[str, Any]) -> list[Issue]:
    """The rules above applied to a pod in API form (``render``'s output), pointers into the pod."""
    issues = hygiene_issues(pod)
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    for key, what in (("name", "pod name"), ("namespace", "namespace")):
        reason = check_dns_label(meta.get(key, ""), what)
        if reason:
            issues.append((f"/metadata/{key}", reason))
    issues += _map_issues(meta.get("labels") or {}, "/metadata/labels", label_values=True, what="label key")
    annotations = meta.get("annotations") or {}
    issues += _map_issues(annotations, "/metadata/annotations", label_values=False, what="annotation key")
    size = sum(len(k) + len(v) for k, v in annotations.items())
    if size > 256 * 1024:
        issues.append(("/metadata/annotations", f"annotations total {size} bytes; at most 262144 allowed"))
    issues += _map_issues(
        spec.get("nodeSelector") or {}, "/spec/nodeSelector", label_values=True, what="label key"
    )
    if spec.get("serviceAccountName"):
        reason = check_subdomain(spec["serviceAccountName"], "service account name")
        if reason:
            issues.append(("/spec/serviceAccountName", reason))
    for i, secret in enumerate(spec.get("imagePullSecrets") or []):
        reason = check_subdomain(secret.get("name", ""), "image pull secret name")
        if reason:
            issues.append((f"/spec/imagePullSecrets/{i}/name", reason))
    issues += toleration_issues(spec.get("tolerations") or [], "/spec/tolerations")
    issues += affinity_issues(spec.get("affinity") or {}, "/spec/affinity")
    for c, container in enumerate(spec.get("containers") or []):
        where = f"/spec/containers/{c}"
        reason = check_image(container.get("image", ""))
        if reason:
            issues.append((f"{where}/image", reason))
        for e, env in enumerate(container.get("env") or []):
            reason = check_env_name(env.get("name", ""))
            if reason:
                issues.append((f"{where}/env/{e}/name", reason))
            source = env.get("valueFrom") or {}
            for ref, what in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                if ref in source:
                    issues += key_ref_issues(source[ref], f"{where}/env/{e}/valueFrom/{ref}", what)
        resources = container.get("resources") or {}
        issues += resource_issues(
            resources.get("requests") or {},
            resources.get("limits") or {},
            lambda kind, name, where=where: f"{where}/resources/{kind}/{_escape(name)}",
        )
    return issues


# -- volumes, mounts, env sources, security contexts (manifest form: snake_case)


def check_relative_path(path: str, what: str) -> str | None:
    """validateLocalDescendingPath: relative, no '..' element."""
    if path.startswith("/"):
        return f"{what} {path!r} must be a relative path"
    if ".." in path.split("/"):
        return f"{what} {path!r} must not contain '..'"
    return None


def _items_issues(items: list[dict[str, Any]], pointer: str) -> list[Issue]:
    issues: list[Issue] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"{pointer}/{i}"
        reason = check_config_map_key(item["key"])
        if reason:
            issues.append((f"{where}/key", reason))
        reason = check_relative_path(item["path"], "path")
        if reason:
            issues.append((f"{where}/path", reason))
        elif item["path"] in seen:
            issues.append((f"{where}/path", f"path {item['path']!r} is already used by another item"))
        seen.add(item["path"])
    return issues


def _source_issues(kind: str, source: dict[str, Any], where: str) -> list[Issue]:
    issues: list[Issue] = []
    name_key = {"secret": "secret_name", "config_map": "name", "persistent_volume_claim": "claim_name"}.get(
        kind
    )
    if name_key and name_key in source:
        reason = check_subdomain(source[name_key], f"{kind.replace('_', ' ')} name")
        if reason:
            issues.append((f"{where}/{name_key}", reason))
    issues += _items_issues(source.get("items", []), f"{where}/items")
    if kind == "empty_dir" and "size_limit" in source:
        issues += _quantity_issues(source["size_limit"], f"{where}/size_limit", "size_limit", positive=False)
    if kind == "ephemeral":
        issues += _quantity_issues(source["storage"], f"{where}/storage", "storage", positive=True)
        if "storage_class_name" in source:
            reason = check_subdomain(source["storage_class_name"], "storage class name")
            if reason:
                issues.append((f"{where}/storage_class_name", reason))
    if kind == "projected":
        paths: set[str] = set()
        for i, projection in enumerate(source["sources"]):
            ((sub, body),) = projection.items()
            at = f"{where}/sources/{i}/{sub}"
            if sub == "service_account_token":
                reason = check_relative_path(body["path"], "path")
                found = [(f"{at}/path", reason)] if reason else []
                names = [body["path"]]
            else:
                reason = check_subdomain(body["name"], f"{sub.replace('_', ' ')} name")
                found = [(f"{at}/name", reason)] if reason else []
                found += _items_issues(body.get("items", []), f"{at}/items")
                names = [item["path"] for item in body.get("items", [])]
            issues += found
            for name in names:
                if name in paths:
                    issues.append((at, f"projected path {name!r} is already used by another source"))
                paths.add(name)
    return issues


def _quantity_issues(text: str, pointer: str, what: str, *, positive: bool) -> list[Issue]:
    if QUANTITY_RE.fullmatch(text) is None:
        return []  # the schema's quantity pattern reports it
    try:
        value = quantity(text)
    except ValueError as exc:
        return [(pointer, str(exc))]
    if value < 0 or (positive and value == 0):
        return [
            (pointer, f"{what} must be {'greater than zero' if positive else 'zero or more'}, not {text!r}")
        ]
    return []


def volume_issues(volumes: list[dict[str, Any]], pointer: str) -> list[Issue]:
    """validateVolumes: unique RFC 1123 names, exactly one source, names, paths, quantities."""
    issues: list[Issue] = []
    seen: dict[str, int] = {}
    for i, volume in enumerate(volumes):
        where = f"{pointer}/{i}"
        name = volume["name"]
        if name in seen:
            issues.append(
                (f"{where}/name", f"volume name {name!r} is already used at {pointer}/{seen[name]}")
            )
        seen.setdefault(name, i)
        sources = [k for k in volume if k != "name"]
        if len(sources) != 1:
            issues.append(
                (
                    where,
                    f"a volume needs exactly one source ({', '.join(VOLUME_SOURCES)}), found {len(sources)}",
                )
            )
            continue
        issues += _source_issues(sources[0], volume[sources[0]], f"{where}/{sources[0]}")
    return issues


VOLUME_SOURCES = (
    "persistent_volume_claim",
    "empty_dir",
    "secret",
    "config_map",
    "projected",
    "ephemeral",
    "host_path",
)


def mount_issues(mounts: list[dict[str, Any]], pointer: str) -> list[Issue]:
    """validateVolumeMounts: unique mount paths, relative sub paths without '..'."""
    issues: list[Issue] = []
    seen: set[str] = set()
    for i, mount in enumerate(mounts):
        where = f"{pointer}/{i}"
        path = mount["mount_path"]
        if path.rstrip("/") in seen:
            issues.append((f"{where}/mount_path", f"mount path {path!r} is already used by another mount"))
        seen.add(path.rstrip("/"))
        if "sub_path" in mount:
            reason = check_relative_path(mount["sub_path"], "sub_path")
            if reason:
                issues.append((f"{where}/sub_path", reason))
    return issues


def security_issues(context: dict[str, Any], pointer: str) -> list[Issue]:
    """validateSecurityContext and the kubelet's non-root check: contradictions refused before a pod exists."""
    issues: list[Issue] = []
    seccomp = context.get("seccomp_profile")
    if seccomp:
        if seccomp["type"] == "Localhost" and not seccomp.get("localhost_profile"):
            issues.append((f"{pointer}/seccomp_profile/localhost_profile", "required when type is Localhost"))
        if seccomp["type"] != "Localhost" and "localhost_profile" in seccomp:
            issues.append(
                (f"{pointer}/seccomp_profile/localhost_profile", "allowed only when type is Localhost")
            )
    if context.get("allow_privilege_escalation") is False:
        if context.get("privileged"):
            issues.append(
                (f"{pointer}/allow_privilege_escalation", "cannot be false when privileged is true")
            )
        if "SYS_ADMIN" in context.get("capabilities", {}).get("add", []):
            issues.append(
                (f"{pointer}/allow_privilege_escalation", "cannot be false when capabilities add SYS_ADMIN")
            )
    if context.get("run_as_non_root") and context.get("run_as_user") == 0:
        issues.append(
            (f"{pointer}/run_as_user", "run_as_non_root is true: the kubelet refuses to start user 0")
        )
    return issues
