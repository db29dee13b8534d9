"""A style-transfer job request, checked and expanded into (variant, seed) trials, or a SpecError naming the field.

Everything a trial needs is checked here: the variants, the protocol, the content images, the style image
and the perceptual net's weights (shapes included), so no trial starts on input the API could refuse.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from service import presets, settings
from service.errors import SpecError
from service.schemas import Resources, distinct_seeds
from service.style import STYLE_TRANSFER

DEFAULT_STYLE_VARIANTS = ("bn", "in", "bn+se", "bn+srm")
CLASSIFICATION_ONLY = ("backbone", "folds", "repeats", "rope", "analyses")
STYLE_ONLY = ("style_image", "perceptual_net", "perceptual_net_path", "placement")
BACKBONE = "transformer_net"


class StyleJobSpec(BaseModel):
    """A full style-transfer job: every field resolved (presets expand into this)."""

    model_config = ConfigDict(extra="forbid")
    task: Literal["style_transfer"] = STYLE_TRANSFER
    dataset: str = Field(description="content images: a dataset name, imagefolder:<path> or images:<path> "
                                     "(a flat folder), paths relative to the data dir")
    style_image: str = Field(description="the style image relative to the data dir, or generated:waves / "
                                         "generated:mosaic")
    variants: list[str] = Field(default_factory=lambda: list(DEFAULT_STYLE_VARIANTS), min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    protocol: str = "style_transfer"
    overrides: dict[str, Any] = Field(default_factory=dict)
    perceptual_net: Literal["vgg16", "random"] = "vgg16"
    perceptual_net_path: str | None = None
    placement: Literal["residual", "all_norms"] = "residual"
    resources: Resources = Field(default_factory=Resources)
    name: str | None = Field(None, max_length=200)

    _distinct_seeds = field_validator("seeds")(distinct_seeds)

    @property
    def backbone(self) -> str:
        """The network every variant of a style job trains (the jobs table's backbone column)."""
        return BACKBONE


def is_style_request(task: str | None, preset: str | None) -> bool:
    """A request for a style job: its ``task`` says so, or (without one) its preset is a style preset."""
    if task is not None:
        return task == STYLE_TRANSFER
    return bool(preset) and presets.PRESETS.get(preset, {}).get("spec", {}).get("task") == STYLE_TRANSFER


def reject_style_fields(request: Any) -> None:
    """A classification job given a style-transfer field: 422 naming it."""
    for field in STYLE_ONLY:
        if getattr(request, field, None) is not None:
            raise SpecError(field, f"{field} is only for style_transfer jobs; send \"task\": \"style_transfer\" "
                                   "or leave it out")
    if request.style_variants is not None:
        raise SpecError("variants", "style-transfer variants are only for style_transfer jobs")


def resolve_style_request(request: Any) -> StyleJobSpec:
    """The preset expanded and overlaid with the explicit fields, as a StyleJobSpec."""
    explicit = request.explicit_fields()
    for field in CLASSIFICATION_ONLY:
        if field in explicit:
            raise SpecError(field, f"{field} is only for classification jobs; a style_transfer job trains one "
                                   "transformer net per (variant, seed) on all its content images")
    base = presets.expand(request.preset) if request.preset else {}
    merged = base | {key: value.model_dump() if hasattr(value, "model_dump") else value
                     for key, value in explicit.items() if key != "style_variants"}
    if request.style_variants is not None:
        merged["variants"] = request.style_variants
    merged["task"] = STYLE_TRANSFER
    try:
        return StyleJobSpec.model_validate(merged)
    except ValidationError as err:
        first = err.errors()[0]
        message = "required for a style_transfer job" if first["type"] == "missing" else first["msg"]
        raise SpecError(".".join(str(p) for p in first["loc"]), message) from err


def _check_variants(spec: StyleJobSpec) -> None:
    from workers.style.network import parse_variant

    seen: set[str] = set()
    for index, variant in enumerate(spec.variants):
        try:
            parse_variant(variant)
        except ValueError as err:
            raise SpecError(f"variants.{index}", str(err)) from err
        if variant in seen:
            raise SpecError(f"variants.{index}", f"variant {variant!r} is listed twice")
        seen.add(variant)


def _protocol(spec: StyleJobSpec):
    import re

    from workers.style.protocol import StyleProtocolError, get_style_protocol, list_style_protocols

    if spec.protocol not in list_style_protocols():
        raise SpecError("protocol", f"unknown style-transfer protocol {spec.protocol!r}; valid: "
                                    f"{', '.join(list_style_protocols())}")
    try:
        return get_style_protocol(spec.protocol, spec.overrides)
    except StyleProtocolError as err:
        named = re.search(r"protocol field '(\w+)'", str(err))
        raise SpecError(f"overrides.{named.group(1)}" if named else "overrides", str(err)) from err


def _inputs(spec: StyleJobSpec, protocol) -> tuple[str, str, str]:
    """(content fingerprint, style digest, perceptual net description), each checked."""
    from workers.style.inputs import StyleInputError, describe_content, load_style
    from workers.style.perceptual import DEFAULT_WEIGHTS, PerceptualNetError, describe_perceptual

    data_dir = settings.data_dir()
    try:
        count, fingerprint = describe_content(spec.dataset, data_dir)
        _, style_digest = load_style(spec.style_image, data_dir)
    except StyleInputError as err:
        raise SpecError(err.field, str(err)) from err
    usable = min(count, protocol.max_images or count)
    if usable < protocol.batch_size + 1:
        raise SpecError("dataset", f"{spec.dataset!r} has {usable} usable content image(s); batch size "
                                   f"{protocol.batch_size} needs at least {protocol.batch_size + 1} (one held out)")
    try:
        perceptual = describe_perceptual(spec.perceptual_net, data_dir, spec.perceptual_net_path)
    except PerceptualNetError as err:
        if spec.perceptual_net == "vgg16" and not spec.perceptual_net_path and "no VGG-16 weights" in str(err):
            raise SpecError("perceptual_net", f"{err}: put torchvision's VGG-16 state dict at "
                                              f"{data_dir / DEFAULT_WEIGHTS} (or name it with perceptual_net_path, "
                                              "relative to the data dir), or ask for \"perceptual_net\": \"random\" "
                                              "for a smoke run") from err
        field = "perceptual_net_path" if spec.perceptual_net_path else "perceptual_net"
        raise SpecError(field, str(err)) from err
    return fingerprint, style_digest, perceptual


def plan_style(request: Any):
    """A checked style-transfer job and its (variant, seed) trials, as service.planning.PlannedJob."""
    from service.planning import PlannedJob, PlannedTrial
    from workers.style.spec import StyleTrialSpec

    spec = resolve_style_request(request)
    _check_variants(spec)
    protocol = _protocol(spec)
    fingerprint, style_digest, perceptual = _inputs(spec, protocol)
    trials = []
    for variant in spec.variants:
        for seed in spec.seeds:
            trial = StyleTrialSpec(dataset=spec.dataset, style_image=spec.style_image, variant={"kind": variant},
                                   seed=seed, protocol=spec.protocol, overrides=dict(spec.overrides),
                                   perceptual_net=spec.perceptual_net, perceptual_net_path=spec.perceptual_net_path,
                                   placement=spec.placement)
            trials.append(PlannedTrial(variant=variant, repeat=0, fold=None, seed=seed, spec=trial.to_dict(),
                                       content_hash=trial.content_hash(fingerprint, style_digest, perceptual)))
    return PlannedJob(spec=spec, protocol_hash=protocol.hash, dataset_fingerprint=fingerprint, trials=trials)
