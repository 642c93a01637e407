"""The Airflow 2 compatibility layer of ``convert``: active only inside its loading subprocess.

Most public KubernetesPodOperator DAG files were written for Airflow 2 and no longer import under
Airflow 3: old module paths, removed helpers (``days_ago``) and removed arguments
(``schedule_interval``). :func:`install` maps each old path to its current module (or a small shim),
and translates the removed arguments into what they meant in Airflow 2, recording every translation
it applies to the file being loaded (:data:`applied`). docs/migration.md has the table; keep it in step
with :data:`ALIASES`, :data:`SHIMS` and the argument translations below.

Never imported by the publisher itself: ``python -m dagfactory_s3.convert.load`` installs it.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["ALIASES", "SHIMS", "applied", "install", "lost", "start_file", "uninstall"]

# Old module path -> the current module it is now (imported under the old name too).
ALIASES = {
    "airflow.contrib.operators.kubernetes_pod_operator": "airflow.providers.cncf.kubernetes.operators.pod",
    "airflow.providers.cncf.kubernetes.operators.kubernetes_pod": "airflow.providers.cncf.kubernetes.operators.pod",
    "airflow.kubernetes.secret": "airflow.providers.cncf.kubernetes.secret",
    "airflow.contrib.kubernetes.secret": "airflow.providers.cncf.kubernetes.secret",
    "airflow.operators.bash_operator": "airflow.providers.standard.operators.bash",
    "airflow.operators.python_operator": "airflow.providers.standard.operators.python",
    "airflow.operators.latest_only_operator": "airflow.providers.standard.operators.latest_only",
    "airflow.operators.dagrun_operator": "airflow.providers.standard.operators.trigger_dagrun",
    "airflow.sensors.external_task_sensor": "airflow.providers.standard.sensors.external_task",
    "airflow.operators.email_operator": "airflow.providers.smtp.operators.smtp",
    # a path of Airflow's development branch that some provider examples were written against
    "airflow.providers.standard.core.operators.bash": "airflow.providers.standard.operators.bash",
    "airflow.providers.standard.core.operators.python": "airflow.providers.standard.operators.python",
}
# Old module paths that are shims built here (classes that no longer exist, as functions building
# what the operator takes today).
SHIMS = (
    "airflow.kubernetes.volume",
    "airflow.contrib.kubernetes.volume",
    "airflow.kubernetes.volume_mount",
    "airflow.contrib.kubernetes.volume_mount",
    "airflow.kubernetes.pod",
    "airflow.contrib.kubernetes.pod",
    "airflow.operators.dummy_operator",
    "airflow.operators.dummy",
    # Airflow's system-test harness, imported at the end of the provider's example DAGs: not the job.
    "tests_common.test_utils.watcher",
    "tests_common.test_utils.system_tests",
    "tests.system.utils.watcher",
    "tests.system.utils",
)
# Empty parent packages of the old paths.
_PACKAGES = (
    "airflow.contrib",
    "airflow.contrib.operators",
    "airflow.contrib.kubernetes",
    "airflow.kubernetes",
    "airflow.providers.standard.core",
    "airflow.providers.standard.core.operators",
    "tests_common",
    "tests_common.test_utils",
    "tests",
    "tests.system",
)

applied: list[str] = []  # translations applied while loading the current file
lost: list[str] = []  # what the current file uses that has no Airflow 3 meaning
_names: set[str] = set()  # old module names put in sys.modules for the current file
_patches: list[tuple[Any, str, Any]] = []
_real: dict[str, types.ModuleType] = {}  # current modules a shim extends, imported before the finder


def _note(text: str) -> None:
    if text not in applied:
        applied.append(text)


def _lost(text: str) -> None:
    if text not in lost:
        lost.append(text)


def start_file() -> None:
    """Forget the previous file's translations and old module names, so each file records its own."""
    applied.clear()
    lost.clear()
    for name in _names:
        sys.modules.pop(name, None)
    _names.clear()


# -- shims -------------------------------------------------------------------------------------


def _k8s() -> Any:
    from kubernetes.client import models

    return models


def _volume(name: str, configs: dict[str, Any]) -> Any:
    """Airflow 2's ``Volume(name, configs)``: ``configs`` is the volume source in API form."""
    from kubernetes.client import ApiClient

    _note("Volume(name, configs) -> kubernetes V1Volume")
    return ApiClient()._ApiClient__deserialize({"name": name, **configs}, "V1Volume")


def _volume_mount(name: str, mount_path: str, sub_path: str | None = None, read_only: bool = False) -> Any:
    _note("VolumeMount(...) -> kubernetes V1VolumeMount")
    return _k8s().V1VolumeMount(name=name, mount_path=mount_path, sub_path=sub_path, read_only=read_only)


def _port(name: str | None = None, container_port: int | None = None) -> Any:
    _note("Port(...) -> kubernetes V1ContainerPort")
    return _k8s().V1ContainerPort(name=name, container_port=container_port)


_RESOURCE_KEYS = {
    "request_memory": ("requests", "memory"),
    "request_cpu": ("requests", "cpu"),
    "request_ephemeral_storage": ("requests", "ephemeral-storage"),
    "limit_memory": ("limits", "memory"),
    "limit_cpu": ("limits", "cpu"),
    "limit_gpu": ("limits", "nvidia.com/gpu"),
    "limit_ephemeral_storage": ("limits", "ephemeral-storage"),
}


def _resources(**values: Any) -> Any:
    """Airflow 2's ``Resources(request_memory=..., limit_cpu=...)`` / ``resources={...}`` dict."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if key not in _RESOURCE_KEYS:
            raise TypeError(f"Resources: unknown argument {key!r}")
        if value is not None:
            kind, name = _RESOURCE_KEYS[key]
            out.setdefault(kind, {})[name] = value
    return _k8s().V1ResourceRequirements(requests=out.get("requests"), limits=out.get("limits"))


def _resources_class(**values: Any) -> Any:
    _note("Resources(...) -> kubernetes V1ResourceRequirements")
    return _resources(**values)


def _days_ago(n: int, hour: int = 0, minute: int = 0, second: int = 0, microsecond: int = 0) -> datetime:
    """Airflow 2's ``days_ago``: midnight UTC today minus ``n`` days, fixed at conversion time."""
    import pendulum

    today = pendulum.now("UTC").replace(hour=hour, minute=minute, second=second, microsecond=microsecond)
    value = today - timedelta(days=n)
    _note(
        f"days_ago({n}) -> fixed {value.isoformat()} (the date at conversion; the manifest needs an absolute date)"
    )
    return value


class _NoTask:
    """What the system tests' ``watcher()`` returns here: dependencies on it are no-ops."""

    def __rshift__(self, other: Any) -> Any:
        return other

    def __lshift__(self, other: Any) -> Any:
        return other

    def __rrshift__(self, other: Any) -> _NoTask:
        return self

    def __rlshift__(self, other: Any) -> _NoTask:
        return self


def _watcher() -> _NoTask:
    _note("watcher() of Airflow's system tests dropped (the test harness's task, not the job)")
    return _NoTask()


def _get_test_run(dag: Any) -> Any:
    return lambda *args, **kwargs: None


def _shim(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    if name.endswith(".watcher"):
        module.watcher = _watcher  # type: ignore[attr-defined]
    elif name.startswith(("tests_common", "tests.")):
        module.get_test_run = _get_test_run  # type: ignore[attr-defined]
    elif name.endswith(".volume"):
        module.Volume = _volume  # type: ignore[attr-defined]
    elif name.endswith(".volume_mount"):
        module.VolumeMount = _volume_mount  # type: ignore[attr-defined]
    elif name.endswith(".pod"):
        module.Port = _port  # type: ignore[attr-defined]
        module.Resources = _resources_class  # type: ignore[attr-defined]
    elif name.endswith(("dummy_operator", "dummy")):
        from airflow.providers.standard.operators.empty import EmptyOperator

        module.DummyOperator = EmptyOperator  # type: ignore[attr-defined]
        module.EmptyOperator = EmptyOperator  # type: ignore[attr-defined]
    else:  # airflow.utils.dates: what is left of it, plus days_ago
        real = _real["airflow.utils.dates"]
        module.__dict__.update({k: v for k, v in vars(real).items() if not k.startswith("__")})
        module.days_ago = _days_ago  # type: ignore[attr-defined]
    return module


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves the old module paths: an alias of the current module, a shim, or an empty package."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname in ALIASES or fullname in SHIMS or fullname in _PACKAGES:
            package = fullname in _PACKAGES or fullname == "tests.system.utils"  # a module and a package
            return importlib.util.spec_from_loader(fullname, self, is_package=package)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        name = spec.name
        _names.add(name)
        if name in ALIASES:
            _note(f"import {name} -> {ALIASES[name]}")
            return importlib.import_module(ALIASES[name])
        if name in SHIMS:
            _note(f"import {name} -> compatibility shim")
            module = _shim(name)
            if spec.submodule_search_locations is not None:
                module.__path__ = []  # type: ignore[attr-defined]
            return module
        module = types.ModuleType(name)
        module.__path__ = []  # type: ignore[attr-defined]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


_FINDER = _Finder()


# -- arguments ---------------------------------------------------------------------------------


def _zone(kwargs: dict[str, Any]) -> Any:
    """The DAG's time zone as Airflow 2 chose it: start_date's, else ``[core] default_timezone`` (as a
    pendulum zone)."""
    import pendulum
    from airflow.settings import TIMEZONE

    start = kwargs.get("start_date") or (kwargs.get("default_args") or {}).get("start_date")
    zone = getattr(start, "tzinfo", None)
    if zone is None:
        return TIMEZONE
    if zone is timezone.utc:
        return pendulum.timezone("UTC")
    return (
        zone
        if isinstance(zone, pendulum.tz.timezone.FixedTimezone | pendulum.tz.timezone.Timezone)
        else pendulum.timezone(str(zone))
    )


def _timetable(value: Any, zone: Any) -> Any:
    """What ``schedule_interval`` meant in Airflow 2: a data-interval timetable."""
    from airflow.sdk import CronDataIntervalTimetable, DeltaDataIntervalTimetable

    if value is None or value in ("@once", "@continuous"):
        return value
    if isinstance(value, str):
        from airflow.utils.dates import cron_presets

        return CronDataIntervalTimetable(cron_presets.get(value, value), timezone=zone)
    if isinstance(value, timedelta) or type(value).__name__ == "relativedelta":
        return DeltaDataIntervalTimetable(value)
    return value


def _fixed_start(value: Any, where: str) -> Any:
    """A start date computed at parse time (``datetime.now() - timedelta(days=1)``: it has fractions of a
    second) moves at every parse; fixed to its midnight, as ``days_ago`` is."""
    if isinstance(value, datetime) and value.microsecond:
        fixed = value.replace(hour=0, minute=0, second=0, microsecond=0)
        _note(f"{where} {value.isoformat()} computed at parse time (now()) -> fixed {fixed.isoformat()}")
        return fixed
    return value


def _dag_kwargs(kwargs: dict[str, Any]) -> None:
    if "start_date" in kwargs:
        kwargs["start_date"] = _fixed_start(kwargs["start_date"], "DAG start_date")
    if isinstance(kwargs.get("default_args"), dict) and "start_date" in kwargs["default_args"]:
        start = kwargs["default_args"]["start_date"]
        kwargs["default_args"] = {
            **kwargs["default_args"],
            "start_date": _fixed_start(start, "default_args start_date"),
        }
    if "schedule_interval" in kwargs:
        value = kwargs.pop("schedule_interval")
        if "schedule" not in kwargs:
            kwargs["schedule"] = _timetable(value, _zone(kwargs))
            new = kwargs["schedule"]
            shown = repr(new) if new is None or isinstance(new, str) else type(new).__name__
            _note(f"DAG(schedule_interval={value!r}) -> schedule={shown} (Airflow 2 data intervals)")
    if "concurrency" in kwargs:
        kwargs.setdefault("max_active_tasks", kwargs.pop("concurrency"))
        _note("DAG(concurrency) -> max_active_tasks")
    for gone in ("default_view", "orientation", "full_filepath"):
        if gone in kwargs:
            kwargs.pop(gone)
            _note(f"DAG({gone}) dropped (Airflow 3 removed it; it only changed the UI's first view)")
    if kwargs.pop("sla_miss_callback", None) is not None:
        _lost("DAG(sla_miss_callback): Airflow 3 has no SLAs; use a deadline alert")


def _task_kwargs(kwargs: dict[str, Any]) -> None:
    if "task_concurrency" in kwargs:
        kwargs.setdefault("max_active_tis_per_dag", kwargs.pop("task_concurrency"))
        _note("task_concurrency -> max_active_tis_per_dag")
    if "provide_context" in kwargs:
        kwargs.pop("provide_context")
        _note("provide_context dropped (Airflow 3 always passes the context)")
    for key in ("execution_timeout", "retry_delay", "max_retry_delay"):
        if isinstance(kwargs.get(key), int | float) and not isinstance(kwargs.get(key), bool):
            kwargs[key] = timedelta(seconds=kwargs[key])
            _note(f"{key}=<seconds> -> timedelta")
    if kwargs.pop("sla", None) is not None:
        _lost("sla: Airflow 3 has no SLAs; use a deadline alert")


def _pod_kwargs(kwargs: dict[str, Any]) -> None:
    _task_kwargs(kwargs)
    resources = kwargs.get("resources")
    if isinstance(resources, dict) and (not resources or set(resources) <= set(_RESOURCE_KEYS)):
        kwargs.pop("resources")
        kwargs.setdefault("container_resources", _resources(**resources))
        _note("KubernetesPodOperator(resources={...}) -> container_resources")
    elif resources is not None and type(resources).__name__ == "V1ResourceRequirements":
        kwargs.setdefault("container_resources", kwargs.pop("resources"))
        _note("KubernetesPodOperator(resources=Resources(...)) -> container_resources")
    if "node_selectors" in kwargs:
        kwargs.setdefault("node_selector", kwargs.pop("node_selectors"))
        _note("KubernetesPodOperator(node_selectors) -> node_selector")
    if kwargs.pop("istio_enabled", False):
        _lost("KubernetesPodOperator(istio_enabled=True): the provider removed its Istio handling")
    if "xcom_push" in kwargs:
        kwargs.setdefault("do_xcom_push", kwargs.pop("xcom_push"))
        _note("KubernetesPodOperator(xcom_push) -> do_xcom_push")
    if "is_delete_operator_pod" in kwargs:
        value = kwargs.pop("is_delete_operator_pod")
        kwargs.setdefault("on_finish_action", "delete_pod" if value else "keep_pod")
        _note(f"KubernetesPodOperator(is_delete_operator_pod={value!r}) -> on_finish_action")


def _wrap(cls: Any, translate: Any) -> None:
    original = cls.__init__

    # wraps: Airflow reads the operator's argument names from attributes of __init__ (partial()).
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if type(self) is cls:  # not a subclass (whose own arguments may differ)
            translate(kwargs)
        original(self, *args, **kwargs)

    _patches.append((cls, "__init__", original))
    cls.__init__ = __init__


def install() -> None:
    """Map the old paths and translate the removed arguments, in this process only."""
    if _FINDER in sys.meta_path:
        return
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG

    # airflow.utils.dates lost days_ago: the shim (the module plus days_ago) replaces it for good in this
    # process (Airflow imports it too, so only a call of days_ago is recorded, not the import).
    _real["airflow.utils.dates"] = importlib.import_module("airflow.utils.dates")
    sys.modules["airflow.utils.dates"] = _shim("airflow.utils.dates")
    importlib.import_module("airflow.utils").dates = sys.modules["airflow.utils.dates"]
    # Right after the standard path finder: a module that exists is always the real one.
    path_finder = next((i for i, f in enumerate(sys.meta_path) if f is importlib.machinery.PathFinder), -1)
    sys.meta_path.insert(path_finder + 1 if path_finder >= 0 else len(sys.meta_path), _FINDER)
    _wrap(DAG, _dag_kwargs)
    _wrap(KubernetesPodOperator, _pod_kwargs)
    for cls in (EmptyOperator, BashOperator, PythonOperator):  # refused later, but with their reason
        _wrap(cls, _task_kwargs)


def uninstall() -> None:
    """Undo :func:`install`: the converted stubs are loaded the way the Airflow image loads them."""
    start_file()
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for name, module in _real.items():
        sys.modules[name] = module
        importlib.import_module("airflow.utils").dates = module
    while _patches:
        cls, name, original = _patches.pop()
        setattr(cls, name, original)
