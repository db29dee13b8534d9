"""Recalibration kinds from outside the repository, loaded when a worker, the service or the CLI starts.

A plugin is a module that calls ``srm_models.register_recalibration`` when imported. It is
named in ``SRM_BENCH_PLUGINS`` (comma-separated modules) or declared by an installed package
under the entry-point group ``srm_bench.recalibrations`` (the entry point names the module, or
a function that registers). A trial records the plugin it uses (module, version, source hash),
and a Ray worker imports that module before it builds the model.
"""
from __future__ import annotations

import importlib
from importlib import metadata

from . import settings

ENTRY_POINT_GROUP = "srm_bench.recalibrations"


class PluginError(ValueError):
    """A plugin that could not be loaded; the message names each one and its error."""


def load_plugins() -> list[str]:
    """Import every configured plugin; returns their names. Raises PluginError naming each failure."""
    loaded, failures = [], []
    for name in settings.current().plugins:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception as err:  # a plugin's import may raise anything; say which and what
            failures.append(f"{name!r} ({settings.PLUGINS_VARIABLE}): {type(err).__name__}: {err}")
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = entry.load()
            if callable(target) and not isinstance(target, type):
                target()
            loaded.append(entry.value)
        except Exception as err:
            failures.append(f"{entry.value!r} (entry point {entry.name!r} of {ENTRY_POINT_GROUP}): "
                            f"{type(err).__name__}: {err}")
    if failures:
        raise PluginError("could not load recalibration plugin " + "; ".join(failures))
    return loaded


def ensure_plugin(record: dict, kind: str) -> None:
    """Import the plugin a trial was planned with and check it is the same code.

    Raises ValueError (a trial error, not retried) when it cannot be imported here or its
    source changed since the trial was planned.
    """
    from srm_models import provenance, recalibration_kinds

    module = record.get("module")
    try:
        importlib.import_module(str(module))
        if kind not in recalibration_kinds():
            load_plugins()  # an entry point that registers from a function
    except Exception as err:
        raise ValueError(f"the trial's recalibration kind {kind!r} comes from plugin {module!r}, which does not "
                         f"load here ({type(err).__name__}: {err}); make it importable on every Ray worker "
                         "(docs/models.md, 'Bring your own module')") from err
    current = provenance(kind) if kind in recalibration_kinds() else None
    if current is None or current.get("source_sha256") != record.get("source_sha256"):
        raise ValueError(f"plugin {module!r} for kind {kind!r} is not the code this trial was planned with "
                         f"(planned {record}, found {current}); submit the job again to run the new code")
