"""What the service can offer: datasets, protocols and models, read from workers and srm_models.

The only place the service asks those packages what exists, so the API, validation and
CLI describe the same things.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from service import settings


def _as_dict(obj: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if hasattr(obj, "_asdict"):
        return obj._asdict()
    return dict(vars(obj))


def datasets() -> list[dict[str, Any]]:
    """Every dataset the workers can load, the data each needs and whether it is present."""
    from workers.data import list_datasets

    return [_as_dict(info) for info in list_datasets(settings.data_dir())]


def protocols() -> dict[str, dict[str, Any]]:
    from workers.protocols import list_protocols

    return {name: protocol.to_dict() | {"hash": protocol.hash} for name, protocol in list_protocols().items()}


def models() -> list[str]:
    from srm_models import list_models

    return sorted(list_models())
