"""The one list of recalibration kinds. Everything else (model names, the API's validation,
the planner, the benchmarks) asks this module what exists.

Built-in kinds register in ``srm_models/layers/__init__.py``; a plugin registers its own kind
when it is imported (see docs/models.md, "Bring your own module").
"""
from __future__ import annotations

import hashlib
import inspect
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..errors import InvalidArgumentError
from .base import Recalibration

NONE = "none"
# The only alias: jobs, tables and the API call the plain network "baseline"; models call it "none".
BASELINE = "baseline"
KIND_NAME = re.compile(r"[a-z][a-z0-9]*")  # no underscore: "{kind}_{backbone}" must split one way


@dataclass(frozen=True)
class RecalibrationKind:
    """A registered kind: its name, the module class built per residual block, and how to build it."""

    name: str
    cls: type[Recalibration]
    needs_feature_size: bool
    description: str
    registered_by: str  # the module whose import registers it: what a Ray worker imports to get it

    @property
    def builtin(self) -> bool:
        return self.cls.__module__.startswith("srm_models.")


_KINDS: dict[str, RecalibrationKind] = {}


def register_recalibration(name: str, cls: type[Recalibration], *, needs_feature_size: bool = False,
                           description: str) -> RecalibrationKind:
    """Make ``cls`` available as kind ``name``: models ``{name}_{backbone}``, jobs ``{"kind": name}``.

    ``cls`` subclasses :class:`Recalibration` and is built as ``cls(channels, **options)`` (plus
    ``feature_size=(h, w)`` when ``needs_feature_size``); its keyword options with defaults are
    what a job's variant may set. Registering the same class again (a module imported twice)
    is a no-op; another class under a taken name is an error.
    """
    if not isinstance(name, str) or not KIND_NAME.fullmatch(name) or name == BASELINE:
        raise InvalidArgumentError(f"recalibration kind name {name!r} is not valid; use lower-case letters and "
                                   f"digits, starting with a letter (not {BASELINE!r}, the alias of {NONE!r})")
    if not (isinstance(cls, type) and issubclass(cls, Recalibration)):
        raise InvalidArgumentError(f"recalibration kind {name!r}: {cls!r} is not a subclass of "
                                   "srm_models.Recalibration")
    if not isinstance(description, str) or not description.strip():
        raise InvalidArgumentError(f"recalibration kind {name!r}: give a one-line description")
    caller = sys._getframe(1).f_globals.get("__name__", cls.__module__)
    kind = RecalibrationKind(name, cls, bool(needs_feature_size), description.strip(), caller)
    known = _KINDS.get(name)
    if known is not None and _qualified(known.cls) != _qualified(cls):
        raise InvalidArgumentError(f"recalibration kind {name!r} is already registered by "
                                   f"{_qualified(known.cls)}; choose another name for {_qualified(cls)}")
    _KINDS[name] = kind
    return kind


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def canonical_kind(name: str) -> str:
    """``baseline`` -> ``none``; any other name unchanged."""
    return NONE if name == BASELINE else name


def get_kind(name: str) -> RecalibrationKind:
    """The registered kind (``baseline`` accepted for ``none``), or an error listing the valid ones."""
    kind = _KINDS.get(canonical_kind(name)) if isinstance(name, str) else None
    if kind is None:
        raise InvalidArgumentError(f"unknown recalibration kind {name!r}; valid kinds: {', '.join(_KINDS)}")
    return kind


def recalibration_kinds() -> dict[str, RecalibrationKind]:
    """Every registered kind by name, ``none`` first, in registration order."""
    return dict(_KINDS)


def variant_kinds() -> list[str]:
    """What a job's variant may be: ``baseline`` and every kind with a module."""
    return [BASELINE, *(name for name in _KINDS if name != NONE)]


def provenance(name: str) -> dict[str, str] | None:
    """Where a plugin kind comes from: the module that registers it, its version (when known) and
    the SHA-256 of the source file that defines the class.

    None for the built-in kinds, whose code the package version already pins. A trial records
    this, so a changed plugin never counts as the same trial.
    """
    kind = get_kind(name)
    if kind.builtin:
        return None
    found: dict[str, str] = {"module": kind.registered_by}
    version = _version_of(kind.registered_by, sys.modules.get(kind.registered_by))
    if version:
        found["version"] = version
    source = inspect.getsourcefile(kind.cls)
    if source and Path(source).is_file():
        found["source_sha256"] = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    return found


def _version_of(module_name: str, module: object) -> str | None:
    """The module's ``__version__``, else the version of the installed distribution that ships it."""
    version = getattr(module, "__version__", None)
    if isinstance(version, str) and version:
        return version
    top = module_name.split(".")[0]
    for distribution in metadata.packages_distributions().get(top, []):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None
