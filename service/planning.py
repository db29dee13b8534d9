"""Turn a job request into a checked spec and its trials, or a SpecError naming the field.

Everything a trial needs to run is checked here, at submission, so a job never fails on
the cluster for a reason the API could have told the user about.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from service import presets, settings
from service.errors import SpecError
from service.schemas import JobRequest, JobSpec


@dataclass
class PlannedTrial:
    variant: str
    repeat: int
    fold: int | None
    seed: int
    spec: dict[str, Any]
    content_hash: str


@dataclass
class PlannedJob:
    spec: JobSpec
    protocol_hash: str
    dataset_fingerprint: str
    trials: list[PlannedTrial]


def resolve_request(request: JobRequest) -> JobSpec:
    """A preset expanded and overlaid with the explicit fields, or the request itself, as a JobSpec."""
    base = presets.expand(request.preset) if request.preset else {}
    merged = base | {key: _plain(value) for key, value in request.explicit_fields().items()}
    try:
        return JobSpec.model_validate(merged)
    except ValidationError as err:  # a field missing, or a preset overlaid with fields that make it invalid
        first = err.errors()[0]
        message = "required unless a preset is given" if first["type"] == "missing" else first["msg"]
        raise SpecError(".".join(str(p) for p in first["loc"]), message) from err


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.model_dump() if hasattr(value, "model_dump") else value


def _protocol(spec: JobSpec):
    """The protocol with overrides; workers reject bad fields (batch size 1 with BatchNorm included)."""
    from workers.protocols import ProtocolError, get_protocol, list_protocols

    known = list_protocols()
    if spec.protocol not in known:
        raise SpecError("protocol", f"unknown protocol {spec.protocol!r}; valid protocols: {', '.join(sorted(known))}")
    try:
        return get_protocol(spec.protocol, spec.overrides or None)
    except ProtocolError as err:
        named = re.search(r"protocol field '(\w+)'", str(err))
        raise SpecError(f"overrides.{named.group(1)}" if named else "overrides", str(err)) from err


def _dataset_summary(spec: JobSpec):
    from workers.data import DatasetError, describe_dataset

    try:  # the loaders refuse unknown names, missing files and paths outside the data dir
        summary = describe_dataset(spec.dataset, settings.data_dir())
    except DatasetError as err:
        raise SpecError("dataset", str(err)) from err
    if spec.folds is None and not summary.official_split:
        raise SpecError("folds", f"dataset {spec.dataset!r} has no official split; give folds (k >= 2) "
                                 "for k-fold cross-validation")
    if spec.folds is not None and spec.folds > summary.min_class_count:
        raise SpecError("folds", f"{spec.folds} folds need at least {spec.folds} samples in every class, "
                                 f"but the smallest class of {spec.dataset!r} has {summary.min_class_count}; "
                                 f"use folds <= {summary.min_class_count}")
    return summary


def _check_variants(spec: JobSpec, first_trials: list[Any]) -> None:
    """first_trials: one trial spec per variant, in the order of spec.variants."""
    import srm_models

    known = set(srm_models.list_models())
    if spec.backbone not in srm_models.backbones():
        raise SpecError("backbone", f"unknown backbone {spec.backbone!r}; valid backbones: "
                                    f"{', '.join(srm_models.backbones())}")
    labels: set[str] = set()
    for index, trial in enumerate(first_trials):
        label = trial.variant_label()
        if label in labels:
            raise SpecError(f"variants.{index}", f"variant {label!r} is listed twice")
        labels.add(label)
        if trial.model_name() not in known:
            raise SpecError(f"variants.{index}", f"no model {trial.model_name()!r} for variant {label!r} on "
                                                 f"backbone {spec.backbone!r}")
        _check_ablation(index, dict(trial.variant))


def _check_ablation(index: int, variant: dict[str, Any]) -> None:
    """Ablation keywords are checked by building one small module with them."""
    import srm_models

    kind = variant.pop("kind")
    if kind == srm_models.BASELINE:
        if variant:
            raise SpecError(f"variants.{index}", f"baseline takes no options, got {sorted(variant)}")
        return
    extra = {"feature_size": (4, 4)} if srm_models.get_kind(kind).needs_feature_size else {}
    try:
        srm_models.create_recalibration(kind, 16, **extra, **variant)
    except ValueError as err:
        raise SpecError(f"variants.{index}", str(err)) from err


def plan(request: JobRequest | JobSpec) -> PlannedJob:
    """Check a request against what exists and expand it into trials with content hashes."""
    from service.style import planning as style_planning
    from workers.spec import TrialSpec

    if isinstance(request, JobRequest):
        if style_planning.is_style_request(request.task, request.preset):
            return style_planning.plan_style(request)
        style_planning.reject_style_fields(request)
    spec = resolve_request(request) if isinstance(request, JobRequest) else request
    protocol = _protocol(spec)
    if spec.folds is None and spec.repeats > 1:
        raise SpecError("repeats", "the official split cannot be repeated; give folds (k >= 2) for repeated "
                                   "k-fold cross-validation, or repeats=1")
    folds: list[int | None] = list(range(spec.folds)) if spec.folds else [None]
    trial_specs = [
        TrialSpec(dataset=spec.dataset, backbone=spec.backbone, variant=variant.as_dict(), fold=fold,
                  n_folds=spec.folds, seed=seed, repeat=repeat, protocol=spec.protocol,
                  overrides=dict(spec.overrides))
        for variant in spec.variants for seed in spec.seeds for repeat in range(spec.repeats) for fold in folds
    ]
    _check_variants(spec, trial_specs[::len(spec.seeds) * spec.repeats * len(folds)])
    for index, request in enumerate(spec.analyses):  # asked for at submission: checked now, run at the end
        from service.analyses import resolve_options

        resolve_options(request, spec.backbone, [v.as_dict() for v in spec.variants], protocol.image_size,
                        f"analyses.{index}.")
    summary = _dataset_summary(spec)
    trials = [PlannedTrial(variant=t.variant_label(), repeat=t.repeat, fold=t.fold, seed=t.seed, spec=t.to_dict(),
                           content_hash=t.content_hash(summary.fingerprint)) for t in trial_specs]
    return PlannedJob(spec=spec, protocol_hash=protocol.hash, dataset_fingerprint=summary.fingerprint,
                      trials=trials)
