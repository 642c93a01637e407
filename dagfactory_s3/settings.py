"""The one table of settings for both command-line tools, and the one place env vars are read.

Every option that has an environment twin is an :class:`Option` here (git-sync's ``env.go`` is the
model): its flag, variable, parser, default and help. The publisher's subcommands and the sidecar
build their flags from it, ``--help`` shows every twin as ``[env: X, default: Y]``, and
:func:`markdown_table` renders the documentation's tables from the same rows. The seed's names
(``DAG_BUCKET``, ``ENVIRONMENT``, ``DAG_SYNC_INTERVAL``) are kept. AWS settings are not here: they
come only from the standard AWS chain.
"""

from __future__ import annotations

import argparse
import getpass
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from dagfactory_s3.errors import ConfigError

__all__ = [
    "ALIASES",
    "OPTIONS",
    "PUBLISHED_BY_LIMIT",
    "Alias",
    "Option",
    "add_option",
    "apply_aliases",
    "ci_commit",
    "ci_identity",
    "fill_from_environment",
    "flag_help",
    "from_environment",
    "markdown_table",
    "release_label",
    "resolve",
    "unknown_variables",
]

# Variables with these prefixes are ours: an unknown one is almost certainly a typo, and a typo
# silently falls back to a default (git-sync's README explains why that is dangerous).
OUR_PREFIXES = ("DAG_SYNC_", "DAGFACTORY_")


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 1:
        raise ValueError(f"{value} is not between 0 and 1")
    return number


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        number = kind(value)
        if number <= 0:
            raise ValueError(f"{value} must be greater than 0")
        return number

    return parse


PUBLISHED_BY_LIMIT = 200


def _who(value: str) -> str:
    """One printable line of at most :data:`PUBLISHED_BY_LIMIT` characters (``list --history`` shows it)."""
    text = "".join(c for c in " ".join(value.split()) if c.isprintable())
    if not text:
        raise ValueError(f"{value!r} is empty")
    return text if len(text) <= PUBLISHED_BY_LIMIT else text[: PUBLISHED_BY_LIMIT - 1] + "…"


def _address(value: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (``:PORT`` listens on every interface), or ``off``: None."""
    if value.strip().lower() == "off":
        return None
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 0.0.0.0:9102, 127.0.0.1:9102) or off")
    return (host.strip("[]") or "0.0.0.0", int(port))


class Option(NamedTuple):
    flag: str
    env: str | None
    parse: Callable[[str], Any]
    default: Any
    help: str
    switch: bool = False  # a flag without a value (its variable takes true/false)
    shown: str | None = None  # the default as documented, when it is derived from other settings

    @property
    def shown_default(self) -> str:
        if self.shown:
            return self.shown
        if self.default is None:
            return "required"
        if self.switch or isinstance(self.default, bool):
            return "true" if self.default else "false"
        return str(self.default)


OPTIONS: dict[str, Option] = {
    # -- both tools --------------------------------------------------------------------------
    "bucket": Option("--bucket", "DAG_BUCKET", str, None, "S3 bucket holding the DAGs"),
    "environment": Option(
        "--environment", "ENVIRONMENT", str, None, "environment prefix in the bucket (dev, staging, prod ...)"
    ),
    # -- the publisher -----------------------------------------------------------------------
    "package_name": Option(
        "--package-name", "DAG_PACKAGE_NAME", str, None, "package that owns <env>/<package>/"
    ),
    "parallelism": Option("--parallelism", None, _positive(int), 8, "concurrent S3 requests"),
    "policy": Option(
        "--policy",
        "DAGFACTORY_POLICY",
        str,
        None,
        "a platform policy file (what manifests may use; docs/deploy.md) to check against instead of the "
        "environment's published one; works offline",
        shown="the environment's published policy (<env>/_platform/policy.json), else built in",
    ),
    "require_policy": Option(
        "--require-policy",
        "DAGFACTORY_REQUIRE_POLICY",
        _bool,
        False,
        "refuse to check manifests without a platform policy (no --policy and none published): exit 2 "
        "instead of a warning",
        switch=True,
    ),
    "keep": Option("--keep", None, _positive(int), 10, "release records kept for rollback"),
    "gc_grace": Option(
        "--gc-grace",
        None,
        float,
        86400.0,
        "seconds a replaced release is kept whatever --keep says (a DAG run in flight may name it), and before "
        "content no kept record names is deleted (a slower concurrent publish may still need it)",
    ),
    "published_by": Option(
        "--published-by",
        "DAGFACTORY_PUBLISHED_BY",
        _who,
        None,
        "who publishes, recorded in the release record and shown by 'list --history'",
        shown="the CI's actor and run (GitHub Actions, GitLab CI), else user@host",
    ),
    # -- the sidecar -------------------------------------------------------------------------
    "interval": Option(
        "--interval",
        "DAG_SYNC_INTERVAL",
        _positive(float),
        30.0,
        "seconds between reconcile cycles (full ones, with --queue-url)",
        shown="30.0; 300.0 with --queue-url",
    ),
    "queue_url": Option(
        "--queue-url",
        "DAG_SYNC_QUEUE_URL",
        str,
        None,
        "push delivery: the SQS queue of S3 event notifications this sidecar alone reads; the packages "
        "they name are reconciled at once, between full reconciles every --interval (ignored with --once)",
        shown="none: polling only",
    ),
    "dags_folder": Option(
        "--dags-folder", "DAGS_FOLDER", Path, "/opt/airflow/dags", "the Airflow dags folder to keep in sync"
    ),
    "state_dir": Option(
        "--state-dir",
        "DAG_SYNC_STATE_DIR",
        Path,
        None,
        "where the sync state lives (Airflow never imports it)",
        shown="<dags-folder>/.dagfactory-sync",
    ),
    "metrics_addr": Option(
        "--metrics-addr",
        "DAG_SYNC_METRICS_ADDR",
        _address,
        ("0.0.0.0", 9102),
        "HOST:PORT for /metrics, /healthz, /readyz (the kubelet's probes and Prometheus reach the pod IP; "
        "127.0.0.1:9102 keeps them inside the pod; off: none)",
        shown="0.0.0.0:9102",
    ),
    "max_delete_fraction": Option(
        "--max-delete-fraction",
        "DAG_SYNC_MAX_DELETE_FRACTION",
        _fraction,
        0.5,
        "refuse to delete more than this fraction of served DAGs in one cycle",
    ),
    "allow_python": Option(
        "--allow-python",
        "DAG_SYNC_ALLOW_PYTHON",
        _bool,
        False,
        "also serve non-canonical .py files (legacy packages; runs their code in the control plane)",
        switch=True,
    ),
    "mirror_unreleased": Option(
        "--mirror-unreleased",
        "DAG_SYNC_MIRROR_UNRELEASED",
        _bool,
        False,
        "migration only: also serve packages without a release record, object by object (NOT atomic)",
        switch=True,
    ),
    "once": Option(
        "--once",
        "DAG_SYNC_ONCE",
        _bool,
        False,
        "run one cycle and exit (init container): 0 when S3 was listed, whatever one package holds; 1 when S3 failed; 2 configuration",
        switch=True,
    ),
    "dag_id": Option(
        "--dag-id",
        "DAG_SYNC_DAG_ID",
        str,
        None,
        "with --once: serve this one DAG and the platform policy, nothing else (a worker pod's init "
        "container: its dag_id annotation through the downward API); 1 when the environment does not serve it",
        shown="none: the whole environment",
    ),
    "workers": Option("--workers", "DAG_SYNC_WORKERS", _positive(int), 16, "parallel downloads"),
    "max_backoff": Option(
        "--max-backoff",
        "DAG_SYNC_MAX_BACKOFF",
        _positive(float),
        300.0,
        "longest wait after failures, seconds",
    ),
    # -- the loader (read by Airflow's processes at each parse; no tool has a flag for it) ---
    "local_environment": Option(
        "",
        "DAGFACTORY_LOCAL_ENVIRONMENT",
        str,
        None,
        "a developer's local Airflow: load source manifests with environments resolved for this one "
        "(never a stamped manifest or a folder the sidecar or a bundle serves)",
        shown="none",
    ),
}


def flag_help(opt: Option) -> str:
    """``help [env: X, default: Y]``: the one way both tools show a setting."""
    twin = f"env: {opt.env}, " if opt.env else ""
    return f"{opt.help} [{twin}default: {opt.shown_default}]"


def add_option(parser: argparse.ArgumentParser, name: str, *, help: str | None = None) -> None:
    """A flag of the table, ``None`` when not given: :func:`fill_from_environment` supplies its
    environment twin or default once the command line is parsed (the environment is never read while
    the parser is built, so ``--help`` works whatever the environment holds).

    Never an argparse-required flag: its variable may supply it, so ``--help`` shows it as optional
    (``default: none``) and the command that needs it says so when both are unset.
    """
    opt = OPTIONS[name]
    if opt.switch:
        parser.add_argument(opt.flag, dest=name, action="store_true", default=None, help=flag_help(opt))
        return

    def parse(text: str) -> Any:
        try:
            return opt.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parser.add_argument(
        opt.flag,
        dest=name,
        default=None,
        type=parse,
        metavar=name.upper(),
        help=flag_help(
            opt._replace(help=help or opt.help, shown=opt.shown or ("none" if opt.default is None else None))
        ),
    )


def from_environment(opt: Option, environ: Mapping[str, str]) -> Any:
    """The setting's environment twin, parsed, else its default. Raises ConfigError naming the variable."""
    raw = environ.get(opt.env, "") if opt.env else ""
    if not raw:
        return opt.default
    try:
        return opt.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{opt.env}: {exc}") from None


def fill_from_environment(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """After parsing: each setting of the table the command has (:func:`add_option`) and its flag did
    not give, from its environment twin, then its default."""
    for name, opt in OPTIONS.items():
        if getattr(args, name, False) is None:
            setattr(args, name, from_environment(opt, environ))


def resolve(names: Iterable[str], flags: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Flag, then environment variable, then default, for each of ``names``.

    ``flags`` holds the raw flag strings (None when not given). Raises ConfigError naming the flag
    or variable whose value does not parse.
    """
    values: dict[str, Any] = {}
    for name in names:
        opt = OPTIONS[name]
        raw = flags.get(name)
        if raw is None:
            values[name] = from_environment(opt, environ)
        elif raw == "":
            values[name] = opt.default
        else:
            try:
                values[name] = opt.parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{opt.flag}: {exc}") from None
    return values


def ci_identity(environ: Mapping[str, str]) -> str:
    """Who runs this process, from the standard CI variables: the actor and where it ran.

    GitHub Actions (``GITHUB_ACTOR``, ``GITHUB_REPOSITORY``, ``GITHUB_RUN_ID``), then GitLab CI
    (``GITLAB_USER_LOGIN``, ``CI_PIPELINE_URL``), else ``user@host``. Bounded like ``--published-by``.
    """
    get = {k: environ.get(k, "").strip() for k in _CI_VARIABLES}
    if get["GITHUB_ACTOR"]:
        run = " ".join(
            filter(None, [get["GITHUB_REPOSITORY"], get["GITHUB_RUN_ID"] and f"run {get['GITHUB_RUN_ID']}"])
        )
        return _who(f"{get['GITHUB_ACTOR']} (GitHub Actions{' ' + run if run else ''})")
    if get["GITLAB_USER_LOGIN"]:
        url = get["CI_PIPELINE_URL"]
        return _who(f"{get['GITLAB_USER_LOGIN']} (GitLab CI{' ' + url if url else ''})")
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # a container uid without a passwd entry and no $USER
        user = "unknown"
    return _who(f"{user}@{socket.gethostname()}")


def ci_commit(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The commit CI builds, and the variable it came from: ``GITHUB_SHA`` (GitHub Actions), then
    ``CI_COMMIT_SHA`` (GitLab CI); None outside CI."""
    for name in ("GITHUB_SHA", "CI_COMMIT_SHA"):
        if environ.get(name, "").strip():
            return name, environ[name].strip()
    return None


def release_label(source: str, value: str) -> str:
    """A git sha or package version as a release records and a manifest's stamp carries it: 1-200
    printable characters without spaces. Raises ConfigError naming ``source`` (flag or variable)."""
    if not re.fullmatch(r"[\x21-\x7e]{1,200}", value):
        raise ConfigError(f"{source}: {value!r} is not 1-200 printable ASCII characters without spaces")
    return value


class Alias(NamedTuple):
    """A renamed flag and variable, kept as a deprecated alias until ``until``: its value, converted,
    stands for ``setting`` when the new name is not given, with a warning naming the new one."""

    flag: str
    env: str
    setting: str
    convert: Callable[[str], str]
    until: str


def _port_as_address(value: str) -> str:
    port = value.strip()
    return "off" if port == "0" else f"0.0.0.0:{port}"


ALIASES = (Alias("--metrics-port", "DAG_SYNC_METRICS_PORT", "metrics_addr", _port_as_address, "0.3.0"),)


def apply_aliases(
    flags: dict[str, Any], aliased: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """``flags`` and ``environ`` with each deprecated alias given (``aliased``: flag -> value, from the
    parser) turned into its setting, and one warning per alias used."""
    flags, env, warnings = dict(flags), dict(environ), []
    for alias in ALIASES:
        opt = OPTIONS[alias.setting]
        new = f"{opt.flag} ({opt.env})"
        if aliased.get(alias.flag) is not None:
            warnings.append(f"{alias.flag} is deprecated and goes away in {alias.until}: use {new}")
            if flags.get(alias.setting) is None:
                flags[alias.setting] = alias.convert(str(aliased[alias.flag]))
        if alias.env in env:
            warnings.append(f"{alias.env} is deprecated and goes away in {alias.until}: use {new}")
            if opt.env and opt.env not in env:
                env[opt.env] = alias.convert(env[alias.env])
    return flags, env, warnings


_CI_VARIABLES = ("GITHUB_ACTOR", "GITHUB_REPOSITORY", "GITHUB_RUN_ID", "GITLAB_USER_LOGIN", "CI_PIPELINE_URL")


def unknown_variables(environ: Mapping[str, str], prefixes: Sequence[str] = OUR_PREFIXES) -> list[str]:
    """One warning per variable that looks like ours but is not in the table (a typo)."""
    known = {opt.env for opt in OPTIONS.values() if opt.env} | {alias.env for alias in ALIASES}
    ours = sorted(k for k in known if k.startswith(prefixes))
    return [
        f"unknown environment variable {name}; known: {', '.join(ours)}"
        for name in sorted(environ)
        if name.startswith(prefixes) and name not in known
    ]


def markdown_table(names: Iterable[str]) -> str:
    """The documentation's table of these options (kept equal to the code by a test)."""
    rows = ["| flag | environment variable | default | what |", "|---|---|---|---|"]
    for name in names:
        opt = OPTIONS[name]
        env = f"`{opt.env}`" if opt.env else ""
        rows.append(f"| `{opt.flag}` | {env} | {opt.shown_default} | {opt.help} |")
    return "\n".join(rows) + "\n"
