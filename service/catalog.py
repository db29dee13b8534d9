"""What the service lists: datasets, protocols, models and recalibration kinds, read from workers
and srm_models for the catalog routes. (Validation asks the same packages in service/planning.py
and service/schemas.py, so listings and checks agree.)
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
    """Training protocols by name: classification's, then style transfer's (``task: style_transfer``)."""
    from workers.protocols import list_protocols
    from workers.style.protocol import list_style_protocols

    found = {name: protocol.to_dict() | {"hash": protocol.hash} for name, protocol in list_protocols().items()}
    return found | {name: protocol.to_dict() | {"hash": protocol.hash, "task": "style_transfer"}
                    for name, protocol in list_style_protocols().items()}


def models() -> dict[str, Any]:
    """Backbones, every model name, the variants a job may use, and each kind with its options."""
    import srm_models
    from srm_models.layers.create import recalibration_arguments

    kinds = [{"name": name, "description": kind.description, "needs_feature_size": kind.needs_feature_size,
              "options": recalibration_arguments(name), "plugin": srm_models.provenance(name)}
             for name, kind in srm_models.recalibration_kinds().items()]
    return {"backbones": srm_models.backbones(), "models": srm_models.list_models(),
            "variants": srm_models.variant_kinds(), "kinds": kinds}
