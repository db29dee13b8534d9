"""Request and response bodies of the REST API (pydantic v2)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

DEFAULT_VARIANTS = ("baseline", "se", "ge", "srm")
TASK_FIELDS = ("style_image", "perceptual_net", "perceptual_net_path", "placement", "style_variants")
MAX_REPEATS = 20
DEFAULT_ROPE = 0.5
REPEATS_HELP = (f"repetitions of k-fold cross-validation (1-{MAX_REPEATS}); each reshuffles the stratified "
                "split with its own seed, so the tests get folds x repeats x seeds pairs")
ROPE_HELP = ("region of practical equivalence in top-1 points: gains within ±rope count as no difference "
             "in the Bayesian test (default 0.5)")


def _utc(value: datetime) -> datetime:
    """SQLite hands datetimes back without their zone (stored as UTC); the API always says UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


def _registered_kind(kind: str) -> str:
    """The kinds are srm_models' registry (plugins included), so they are checked, not enumerated."""
    from srm_models import variant_kinds

    valid = variant_kinds()
    if kind not in valid:
        raise ValueError(f"unknown kind {kind!r}; valid kinds: {', '.join(valid)} (GET /v1/models lists them)")
    return kind


def _kinds_enum(schema: dict[str, Any]) -> None:
    """The document lists the kinds registered when it is generated (plugins are loaded by then)."""
    from srm_models import variant_kinds

    schema["enum"] = list(variant_kinds())


def _backbones_enum(schema: dict[str, Any]) -> None:
    import srm_models

    names = list(srm_models.backbones())
    if "anyOf" in schema:  # optional: a backbone name or null
        schema["anyOf"] = [{"type": "string", "enum": names}, {"type": "null"}]
    else:
        schema["enum"] = names


class Variant(BaseModel):
    """A recalibration variant: its kind plus ablation keywords, e.g. {"kind": "srm", "pooling": "avg+max"}."""

    model_config = ConfigDict(extra="allow")
    kind: str = Field(description="baseline or a recalibration kind from GET /v1/models (plugins included)",
                      json_schema_extra=_kinds_enum)

    _kind = field_validator("kind")(_registered_kind)

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()


def distinct_seeds(seeds: list[int]) -> list[int]:
    """Each seed once: a repeated seed would pair a trial with itself."""
    if len(set(seeds)) != len(seeds):
        raise ValueError("seeds must be distinct")
    return seeds


def _variants_from_names(value: Any) -> Any:
    """Accept "srm" as shorthand for {"kind": "srm"}."""
    if isinstance(value, list):
        return [{"kind": item} if isinstance(item, str) else item for item in value]
    return value


class Resources(BaseModel):
    """What one trial reserves on Ray."""

    model_config = ConfigDict(extra="forbid", strict=True)
    cpus: float = Field(1.0, gt=0, description="CPUs per trial")
    gpus: float = Field(0.0, ge=0, description="GPUs per trial (fractions share a GPU)")


AnalysisKind = Literal["pruning", "channel_weights"]


class AnalysisRequest(BaseModel):
    """POST /v1/jobs/{id}/analyses body, or one entry of a job's ``analyses``: a kind plus its options."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "1" or 0 is not a number or a bool here
    kind: AnalysisKind = Field(description="pruning (Fig. 6) or channel_weights (Figs. 7, 8, 10)")
    ratios: list[Annotated[float, Field(ge=0.0, le=1.0)]] | None = Field(
        None, min_length=1, description="pruning: prune ratios in [0, 1]; default 0, 0.1, ..., 1")
    seed: int = Field(0, ge=0, description="pruning: seed of the random-order control")
    block: str | None = Field(None, description="channel_weights: block as conv{stage}_{block}, e.g. conv2_6; "
                                                "default the last block of the first stage")
    channels: int = Field(64, ge=2, le=1024, description="channel_weights: first channels drawn (Figs. 7-8)")
    keep_gates: bool = Field(False, description="channel_weights: also keep every image's channel weights "
                                                "(an .npz per trial under the analysis folder)")


class JobSpec(BaseModel):
    """A full comparison job: every field resolved (presets expand into this)."""

    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(description="a name from GET /v1/datasets, or imagefolder:<path relative to the data dir>")
    backbone: str = Field(description="a backbone name from GET /v1/models, e.g. cifar_resnet20 or resnet50")
    variants: list[Variant] = Field(default_factory=lambda: [Variant(kind=k) for k in DEFAULT_VARIANTS],
                                    min_length=1)
    folds: int | None = Field(5, ge=2, description="k for k-fold cross-validation; null for the official split")
    repeats: int = Field(1, ge=1, le=MAX_REPEATS, description=REPEATS_HELP)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, json_schema_extra={"uniqueItems": True})
    protocol: str = Field("quick", description="a training protocol name from the workers package")
    overrides: dict[str, Any] = Field(default_factory=dict,
                                      description="protocol fields to change: epochs, batch_size, lr, image_size ...")
    resources: Resources = Field(default_factory=Resources)
    rope: float = Field(DEFAULT_ROPE, ge=0, description=ROPE_HELP)
    name: str | None = Field(None, max_length=200)
    analyses: list[AnalysisRequest] = Field(default_factory=list,
                                            description="analyses to run when the job's trials end")

    _names = field_validator("variants", mode="before")(_variants_from_names)

    _distinct_seeds = field_validator("seeds")(distinct_seeds)


class ComparisonFields(BaseModel):
    """What a job and a study share: the comparison, without its dataset(s). Every field optional:
    a preset fills the rest."""

    model_config = ConfigDict(extra="forbid", strict=True)  # "5" is not a number of folds: the schema's types hold
    backbone: str | None = Field(None, description="a backbone name from GET /v1/models",
                                 json_schema_extra=_backbones_enum)
    variants: list[Variant] | None = Field(None, min_length=1)
    folds: int | None = Field(None, ge=2)
    repeats: int | None = Field(None, ge=1, le=MAX_REPEATS, description=REPEATS_HELP)
    seeds: list[int] | None = Field(None, min_length=1, json_schema_extra={"uniqueItems": True})
    protocol: str | None = None
    overrides: dict[str, Any] | None = None
    resources: Resources | None = None
    rope: float | None = Field(None, ge=0, description=ROPE_HELP)
    name: str | None = Field(None, max_length=200)
    analyses: list[AnalysisRequest] | None = None

    _names = field_validator("variants", mode="before")(_variants_from_names)


def _preset_or(fields: dict[str, dict[str, Any]], style: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """JSON Schema of "a preset, or these fields (not null)": what the request needs to plan a job
    (a style-transfer job needs no backbone: ``style`` lists its fields)."""
    options = [{"required": ["preset"], "properties": {"preset": {"type": "string"}}},
               {"required": list(fields), "properties": fields}]
    if style:
        options.append({"required": list(style), "properties": style})
    return {"anyOf": options}


def _preset_names(study: bool) -> list[str]:
    from service import presets

    return list(presets.STUDY_PRESETS if study else presets.PRESETS)


class JobRequest(ComparisonFields):
    """POST /v1/jobs body: a full spec, or a preset plus any fields that change it."""

    model_config = ConfigDict(json_schema_extra=_preset_or(
        {"dataset": {"type": "string"}, "backbone": {"type": "string"}},
        style={"task": {"const": "style_transfer"}, "dataset": {"type": "string"}}))
    preset: str | None = Field(None, description="a paper experiment from GET /v1/presets",
                               json_schema_extra={"enum": [*_preset_names(study=False), None]})
    dataset: str | None = Field(None, validate_default=True,
                                description="required unless a preset gives it. classification: a name from GET "
                                            "/v1/datasets, or imagefolder:<path relative to the data dir>; "
                                            "style_transfer: the content images, also images:<path> (a flat "
                                            "folder)")

    @field_validator("dataset")
    @classmethod
    def _dataset_or_preset(cls, dataset: str | None, info: ValidationInfo) -> str | None:
        if dataset is None and info.data.get("preset") is None:
            raise ValueError("required unless a preset is given: a name from GET /v1/datasets, or a preset "
                             "(GET /v1/presets)")
        return dataset

    task: Literal["classification", "style_transfer"] | None = Field(
        None, description="classification (the default) or style_transfer (paper Sec. 4.3; docs/style-transfer.md)")
    style_image: str | None = Field(None, description="style_transfer: the style image relative to the data dir, "
                                                      "or generated:waves / generated:mosaic")
    perceptual_net: Literal["vgg16", "random"] | None = Field(
        None, description="style_transfer: vgg16 (default; weights at weights/vgg16.pth in the data dir) or random")
    perceptual_net_path: str | None = Field(None, description="style_transfer: VGG-16 weights relative to the "
                                                              "data dir")
    placement: Literal["residual", "all_norms"] | None = Field(
        None, description="style_transfer: where the recalibration module goes (default residual)")
    style_variants: SkipJsonSchema[list[Any] | None] = Field(None, exclude=True)  # a style job's `variants`

    @model_validator(mode="before")
    @classmethod
    def _style_variants(cls, data: Any) -> Any:
        """A style job's variants (bn, in, bn+srm, ...) are not recalibration kinds: kept apart, checked later."""
        if isinstance(data, dict) and "variants" in data:
            from service.style.planning import is_style_request

            if is_style_request(data.get("task"), data.get("preset")):
                data = {k: v for k, v in data.items() if k != "variants"} | {"style_variants": data["variants"]}
        return data

    def explicit_fields(self) -> dict[str, Any]:
        """The fields the client set (folds=null counts: it asks for the official split); ``task`` is not a
        spec field, and a task's own fields count only when given a value."""
        return {name: getattr(self, name) for name in self.model_fields_set
                if name not in ("preset", "task") and not (name in TASK_FIELDS and getattr(self, name) is None)}


class TrialOut(BaseModel):
    id: int
    variant: str
    repeat: int
    fold: int | None
    seed: int
    status: str
    attempts: int
    reused: bool
    top1: float | None
    top5: float | None
    device: str | None
    train_time_s: float | None
    mlflow_run_id: str | None
    error: str | None
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    progress: float | None = Field(description="fraction of the trial's training done, 0..1; null until it "
                                               "starts or while its epoch count is unknown")
    epoch: int | None = Field(description="epochs done so far")
    val_top1: float | None = Field(description="held-out top-1 (%) after the latest epoch")


class Progress(BaseModel):
    total: int
    finished: int
    counts: dict[str, int]
    fraction: float = Field(description="finished trials plus the done part of running ones, over all trials")


class JobOut(BaseModel):
    id: str
    name: str | None
    submitted_by: str | None = Field(description="the submitting user (admin: the bootstrap token; null: "
                                                 "submitted while writes were open without a token)")
    status: str
    n_trials: int
    dataset: str
    backbone: str
    protocol: str
    protocol_hash: str
    cancel_requested: bool
    error: str | None
    mlflow_experiment_id: str | None
    mlflow_run_id: str | None
    mlflow_pending: bool = Field(description="the job ended while its MLflow tracking server was away: MLflow "
                                             "misses some of its runs, or has them RUNNING, until a dispatcher "
                                             "repairs them once the server is back (SQL has every number)")
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None


class JobDetail(JobOut):
    spec: dict[str, Any]
    progress: Progress
    trials: list[TrialOut]


class JobCreated(BaseModel):
    id: str
    status: str
    n_trials: int


class JobPage(BaseModel):
    items: list[JobOut]
    total: int
    limit: int
    offset: int


class AnalysisCreated(BaseModel):
    id: str
    job_id: str
    kind: str
    status: str


class AnalysisOut(BaseModel):
    id: str
    job_id: str
    kind: str
    options: dict[str, Any]
    status: str
    error: str | None
    progress: dict[str, int] = Field(description="the analysis's trial parts by status")
    result: dict[str, Any] | None
    plots: list[str] = Field(description="plot names, served at /v1/analyses/{id}/plots/{name}.png")
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None


class StudyRequest(ComparisonFields):
    """POST /v1/studies body: one comparison over several datasets (a job per dataset), or a study preset
    plus any fields that change it."""

    model_config = ConfigDict(json_schema_extra=_preset_or({"datasets": {"type": "array", "minItems": 2},
                                                            "backbone": {"type": "string"}}))
    preset: str | None = Field(None, description="a study preset from GET /v1/presets (kind: study)",
                               json_schema_extra={"enum": [*_preset_names(study=True), None]})
    datasets: list[str] | None = Field(None, validate_default=True, min_length=2,
                                       json_schema_extra={"uniqueItems": True},
                                       description="2 or more distinct dataset names (3 or more for a post-hoc "
                                                   "conclusion); required unless a preset gives them")

    @field_validator("datasets")
    @classmethod
    def _datasets_or_preset(cls, datasets: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if datasets is None and info.data.get("preset") is None:
            raise ValueError("required unless a preset is given: 2 or more distinct datasets (3 or more for a "
                             "post-hoc conclusion), or a study preset (GET /v1/presets)")
        return datasets


class StudyJob(BaseModel):
    id: str
    dataset: str
    status: str
    n_trials: int


class StudyOut(BaseModel):
    id: str
    name: str | None
    submitted_by: str | None = Field(description="the submitting user, as on jobs")
    status: str = Field(description="queued or running while any job is; else failed, cancelled or succeeded")
    datasets: list[str]
    created_at: UtcDatetime


class StudyDetail(StudyOut):
    spec: dict[str, Any]
    jobs: list[StudyJob]


class StudyPage(BaseModel):
    items: list[StudyOut]
    total: int
    limit: int
    offset: int
