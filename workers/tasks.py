"""The task kinds a trial can be, in one place: ``classification`` (TrialSpec, workers.trial) and
``style_transfer`` (StyleTrialSpec, workers.style.trial). A spec dict says its task; none means classification."""
from __future__ import annotations

from typing import Any

CLASSIFICATION = "classification"
STYLE_TRANSFER = "style_transfer"
TASKS = (CLASSIFICATION, STYLE_TRANSFER)


def task_of(spec: Any) -> str:
    """The task of a spec, a spec dict or a job spec dict."""
    if isinstance(spec, dict):
        return spec.get("task") or CLASSIFICATION
    return getattr(spec, "task", CLASSIFICATION)


def spec_from_dict(data: dict) -> Any:
    """A TrialSpec or a StyleTrialSpec, by the dict's task."""
    if task_of(data) == STYLE_TRANSFER:
        from .style.spec import StyleTrialSpec

        return StyleTrialSpec.from_dict(data)
    from .spec import TrialSpec

    return TrialSpec.from_dict(data)


def run_trial(spec: Any, **kwargs: Any) -> dict:
    """Run one trial of either task (same keywords as workers.trial.run_trial)."""
    if task_of(spec) == STYLE_TRANSFER:
        from .style.trial import run_style_trial

        return run_style_trial(spec, **kwargs)
    from .trial import run_trial as run_classification_trial

    return run_classification_trial(spec, **kwargs)


def planned_epochs(spec: Any) -> int | None:
    """The trial's curve points when known before it runs: epochs of an epoch-budgeted classification protocol,
    the report points of a style protocol with a step budget; else None."""
    if task_of(spec) == STYLE_TRANSFER:
        import math

        from .style.protocol import get_style_protocol

        protocol = get_style_protocol(spec.protocol, spec.overrides)
        return math.ceil(protocol.steps / protocol.report_every) if protocol.steps else None
    from .protocols import get_protocol

    try:
        protocol = get_protocol(spec.protocol, spec.overrides)
    except ValueError:
        return None
    return None if protocol.iterations else protocol.epochs
