"""Trial specs as plain JSON: what the SQL `trials.spec` column, Ray and MLflow carry."""
from __future__ import annotations

import dataclasses
import json
from typing import Any, TypeVar

S = TypeVar("S", bound="JsonSpec")


class JsonSpec:
    """For frozen dataclass specs: ``to_dict`` gives plain JSON types, ``from_dict`` refuses unknown
    fields by name (a spec written by another code version must not be half-read)."""

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[S], data: dict[str, Any]) -> S:
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; valid: {sorted(known)}")
        return cls(**data)
