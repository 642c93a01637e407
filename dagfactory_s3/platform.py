"""The platform policy: what a manifest may use on this Airflow. No Airflow here.

The platform decides, manifests choose: the policy is a JSON file in the Airflow image (path in
``DAGFACTORY_POLICY``), read by the factory at every parse and by ``validate``/``plan``/``publish``
(``--policy FILE``), so CI refuses what the image would refuse. A manifest never names Python; it
picks from what the policy lists. Without a policy file the defaults below apply: any namespace,
service account and registry; every volume type except ``host_path``; no privileged container;
``capabilities.add`` limited to the Kubernetes *baseline* Pod Security Standard list.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, NamedTuple

from dagfactory_s3.errors import ConfigError

__all__ = [
    "BASELINE_CAPABILITIES",
    "DEFAULT",
    "MAX_BYTES",
    "POLICY_ENV",
    "VOLUME_TYPES",
    "Grants",
    "Policy",
    "from_environment",
    "load",
    "owns",
    "parse",
    "read",
]

POLICY_ENV = "DAGFACTORY_POLICY"
VOLUME_TYPES = (
    "config_map",
    "empty_dir",
    "ephemeral",
    "host_path",
    "persistent_volume_claim",
    "projected",
    "secret",
)
# Pod Security Standards, baseline profile: the capabilities a pod may add.
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
MAX_BYTES = 1024 * 1024


class NotifierKind(NamedTuple):
    """A notifier class the factory may build: fixed here, so neither a manifest nor the policy file
    ever names Python. ``options`` are the keyword arguments the policy may give it."""

    module: str
    cls: str
    provider: str
    options: frozenset[str]


NOTIFIER_KINDS = {
    "smtp": NotifierKind(
        "airflow.providers.smtp.notifications.smtp",
        "SmtpNotifier",
        "apache-airflow-providers-smtp",
        frozenset({"to", "from_email", "cc", "bcc", "subject", "html_content", "smtp_conn_id"}),
    ),
    "slack": NotifierKind(
        "airflow.providers.slack.notifications.slack",
        "SlackNotifier",
        "apache-airflow-providers-slack",
        frozenset({"slack_conn_id", "channel", "text", "username", "icon_url"}),
    ),
    "slack_webhook": NotifierKind(
        "airflow.providers.slack.notifications.slack_webhook",
        "SlackWebhookNotifier",
        "apache-airflow-providers-slack",
        frozenset({"slack_webhook_conn_id", "text"}),
    ),
    "pagerduty": NotifierKind(
        "airflow.providers.pagerduty.notifications.pagerduty",
        "PagerdutyNotifier",
        "apache-airflow-providers-pagerduty",
        frozenset(
            {"pagerduty_events_conn_id", "summary", "severity", "source", "component", "group", "class_type"}
        ),
    ),
}
_NOTIFIER_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}", re.ASCII)


class Notifier(NamedTuple):
    kind: str
    options: dict[str, Any]


ALL_PACKAGES = "*"


class GrantKind(NamedTuple):
    """What a grant list holds, and which names a package owns without a grant: ``airflow``
    (``<package>_...``), ``kubernetes`` (``<package-with-dashes>`` or ``<package-with-dashes>-...``) or
    none; ``prefix``: a granted entry is a prefix (asset URIs), not a name."""

    what: str
    own: str | None
    prefix: bool = False


GRANT_KINDS = {
    "variables": GrantKind("Airflow Variable names", "airflow"),
    "connections": GrantKind("Airflow Connection ids", "airflow"),
    "pools": GrantKind("Airflow pool names", "airflow"),
    "queues": GrantKind("executor queue names", "airflow"),
    "service_accounts": GrantKind("Kubernetes service account names", "kubernetes"),
    "secrets": GrantKind("Kubernetes Secret names", "kubernetes"),
    "config_maps": GrantKind("Kubernetes ConfigMap names", "kubernetes"),
    "persistent_volume_claims": GrantKind("PersistentVolumeClaim names", "kubernetes"),
    "image_pull_secrets": GrantKind("image pull Secret names", "kubernetes"),
    "priority_classes": GrantKind("PriorityClass names", "kubernetes"),
    "notifiers": GrantKind("notifier names of this policy", "kubernetes"),
    "tolerations": GrantKind("taint keys a pod may tolerate", None),
    "asset_uris": GrantKind("asset URI prefixes a task may emit as outlets", None, prefix=True),
}


def owns(package: str, kind: str, name: str) -> bool:
    """Whether ``name`` is ``package``'s own without a grant (see :class:`GrantKind`)."""
    rule = GRANT_KINDS[kind].own
    if rule == "airflow":
        return name.startswith(f"{package}_")
    if rule == "kubernetes":
        dashed = package.replace("_", "-")
        return name == dashed or name.startswith(f"{dashed}-")
    return False


class Grants(NamedTuple):
    """What one package may reach beyond its own names: kind -> names (see ``GRANT_KINDS``), and
    whether its templates may read ``dag_run.conf``."""

    names: dict[str, frozenset[str]] = {}  # noqa: RUF012 - a NamedTuple default, never mutated
    dag_run_conf: bool = False

    def get(self, kind: str) -> frozenset[str]:
        return self.names.get(kind, frozenset())


DEFAULT_FILE = "built-in default"


class Policy(NamedTuple):
    """What manifests may use. ``None`` in a list field means "anything"."""

    file: str = DEFAULT_FILE
    namespaces: frozenset[str] | None = None
    service_accounts: frozenset[str] | None = None
    volume_types: frozenset[str] = frozenset(VOLUME_TYPES) - {"host_path"}
    allow_privileged: bool = False
    allowed_capabilities: frozenset[str] = BASELINE_CAPABILITIES
    image_registries: tuple[str, ...] | None = None
    paused_on_create: bool | None = None  # None: Airflow's [core] dags_are_paused_at_creation
    # None: no policy file, so names cannot be checked (CI without the file); a file defines its own.
    notifiers: dict[str, Notifier] | None = None
    # package (or "*": every package) -> its grants; a package's own add to those of "*"
    grants: dict[str, Grants] = {}  # noqa: RUF012 - a NamedTuple default, never mutated

    @property
    def from_file(self) -> bool:
        """A platform's policy file (not the built-in default): names are then checked against grants."""
        return self.file != DEFAULT_FILE

    def grants_for(self, package: str) -> Grants:
        every, own = self.grants.get(ALL_PACKAGES, Grants()), self.grants.get(package, Grants())
        names = {kind: every.get(kind) | own.get(kind) for kind in GRANT_KINDS}
        return Grants(names, every.dag_run_conf or own.dag_run_conf)

    def granted(self, package: str, kind: str, name: str) -> bool:
        """Whether ``package`` may name ``name`` of ``kind``: its own, or granted to it or to every package."""
        if owns(package, kind, name):
            return True
        allowed = self.grants_for(package).get(kind)
        if GRANT_KINDS[kind].prefix:
            return any(name.startswith(p) for p in allowed)
        return name in allowed

    def registry_allowed(self, image: str) -> bool:
        if self.image_registries is None:
            return True
        return any(image.startswith(prefix.rstrip("/") + "/") for prefix in self.image_registries)


DEFAULT = Policy()

_LISTS = {
    "namespaces": "namespace names",
    "service_accounts": "service account names",
    "volume_types": f"volume types ({', '.join(VOLUME_TYPES)})",
    "allowed_capabilities": "Linux capability names such as NET_BIND_SERVICE",
    "image_registries": "registry prefixes such as registry.example.com or 123.dkr.ecr.eu-west-1.amazonaws.com/team",
}


def _strings(value: Any, file: str, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{file}: /{key}: expected a list of {_LISTS[key]}")
    return value


def parse(raw: bytes, file: str) -> Policy:
    """A policy from the file's bytes; every mistake is a ConfigError naming file and pointer."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: /: policy is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{file}: /: policy must be a JSON object")
    known = {
        "$schema",
        "policy_version",
        "allow_privileged",
        "paused_on_create",
        "notifiers",
        "grants",
        *_LISTS,
    }
    for key in sorted(document):
        if key not in known:
            raise ConfigError(
                f"{file}: /{key}: unknown policy field; known: {', '.join(sorted(known - {'$schema'}))}"
            )
    if document.get("policy_version", 1) != 1:
        raise ConfigError(f"{file}: /policy_version: this dagfactory-s3 reads policy_version 1")
    fields: dict[str, Any] = {"file": file}
    for key in ("allow_privileged", "paused_on_create"):
        if key in document:
            if not isinstance(document[key], bool):
                raise ConfigError(f"{file}: /{key}: expected true or false")
            fields[key] = document[key]
    for key in _LISTS:
        if key not in document:
            continue
        values = _strings(document[key], file, key)
        if key == "volume_types":
            unknown = sorted(set(values) - set(VOLUME_TYPES))
            if unknown:
                raise ConfigError(
                    f"{file}: /volume_types: unknown volume type {unknown[0]!r}; known: {', '.join(VOLUME_TYPES)}"
                )
        fields[key] = tuple(values) if key == "image_registries" else frozenset(values)
    fields["notifiers"] = _notifiers(document.get("notifiers", {}), file)
    fields["grants"] = _grants(document.get("grants", {}), file)
    return Policy(**fields)


def _grants(value: Any, file: str) -> dict[str, Grants]:
    """``{"*" | <package>: {<kind>: [...], "dag_run_conf": bool}}`` (kinds: ``GRANT_KINDS``)."""
    if not isinstance(value, dict):
        raise ConfigError(f"{file}: /grants: expected an object of packages ('*' for every package)")
    out = {}
    known = {*GRANT_KINDS, "dag_run_conf"}
    for package, spec in value.items():
        where = f"{file}: /grants/{package}"
        if package != ALL_PACKAGES and not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", package):
            raise ConfigError(f"{where}: not a package name (or '*' for every package)")
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected an object")
        for key in spec:
            if key not in known:
                raise ConfigError(f"{where}/{key}: unknown grant; known: {', '.join(sorted(known))}")
        names = {}
        for kind, grant in GRANT_KINDS.items():
            listed = spec.get(kind, [])
            if not isinstance(listed, list) or not all(isinstance(n, str) and n for n in listed):
                raise ConfigError(f"{where}/{kind}: expected a list of {grant.what}")
            names[kind] = frozenset(listed)
        conf = spec.get("dag_run_conf", False)
        if not isinstance(conf, bool):
            raise ConfigError(f"{where}/dag_run_conf: expected true or false")
        out[package] = Grants(names, conf)
    return out


def _notifiers(value: Any, file: str) -> dict[str, Notifier]:
    if not isinstance(value, dict):
        raise ConfigError(f"{file}: /notifiers: expected an object of named notifiers")
    out = {}
    for name, spec in value.items():
        where = f"{file}: /notifiers/{name}"
        if not _NOTIFIER_NAME.fullmatch(name):
            raise ConfigError(f"{where}: a notifier name is lowercase letters, digits and '-', at most 63")
        if not isinstance(spec, dict) or spec.get("kind") not in NOTIFIER_KINDS:
            raise ConfigError(f"{where}/kind: one of {', '.join(sorted(NOTIFIER_KINDS))} is required")
        kind = NOTIFIER_KINDS[spec["kind"]]
        options = {k: v for k, v in spec.items() if k != "kind"}
        for key, option in options.items():
            if key not in kind.options:
                raise ConfigError(
                    f"{where}/{key}: not an option of {spec['kind']}; known: {', '.join(sorted(kind.options))}"
                )
            if not (
                isinstance(option, str)
                or (isinstance(option, list) and all(isinstance(o, str) for o in option))
            ):
                raise ConfigError(f"{where}/{key}: expected a string or a list of strings")
        out[name] = Notifier(spec["kind"], options)
    return out


def read(path: str) -> bytes:
    """A policy file's bytes, at most :data:`MAX_BYTES`; a ConfigError naming the file otherwise."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: /: cannot read the platform policy: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{path}: /: policy is larger than 1 MiB")
    return raw


def load(path: str) -> Policy:
    return parse(read(path), path)


def from_environment(environ: Any = os.environ) -> Policy:
    """The policy ``DAGFACTORY_POLICY`` names, else the default. A named file that cannot be read is an
    error (fail closed: a platform that configured a policy never gets none)."""
    path = environ.get(POLICY_ENV, "")
    return load(path) if path else DEFAULT
