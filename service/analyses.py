"""Analysis rows: check a request against its job, create, read, list. Runs live in analysis_runner."""
from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import AnalysisNotFound, JobNotFound, NotReady, SpecError
from service.models import Analysis, Job, utcnow
from service.schemas import AnalysisRequest

DEFAULT_RATIOS = [round(0.1 * i, 1) for i in range(11)]


def gated_layout(backbone: str, variants: list[dict[str, Any]], image_size: int) -> dict[str, list[str]]:
    """Variant label -> the model's gated block names (conv{stage}_{block}); variants without gates left out.

    The models are built on the meta device: only their structure is needed.
    """
    import torch

    import srm_models
    from srm_models.gates import gated_blocks
    from workers.spec import TrialSpec

    layout = {}
    for variant in variants:
        spec = TrialSpec(dataset="", backbone=backbone, variant=variant)
        with torch.device("meta"):
            model = srm_models.create_model(spec.model_name(), num_classes=2, input_size=image_size,
                                            **spec.variant_options())
        blocks = list(gated_blocks(model))
        if blocks:
            layout[spec.variant_label()] = blocks
    return layout


def resolve_options(request: AnalysisRequest, backbone: str, variants: list[dict[str, Any]], image_size: int,
                    where: str = "") -> dict[str, Any]:
    """The options the analysis runs with (defaults filled in), or SpecError naming the bad field."""
    layout = gated_layout(backbone, variants, image_size)
    if not layout:
        raise SpecError(f"{where}kind", f"nothing to analyse: none of the job's variants "
                                        f"({', '.join(v['kind'] for v in variants)}) has a per-channel gate; "
                                        "a job needs at least one of se, ge, srm, cbam")
    defaults = AnalysisRequest(kind=request.kind)
    foreign = {"pruning": ("block", "channels", "keep_gates"), "channel_weights": ("ratios", "seed")}[request.kind]
    for name in foreign:  # set to something else than its default: a mistake worth naming
        if getattr(request, name) != getattr(defaults, name):
            other = "pruning" if request.kind == "channel_weights" else "channel_weights"
            raise SpecError(f"{where}{name}", f"{name} is an option of {other}, not of {request.kind}")
    if request.kind == "pruning":
        return {"ratios": sorted(set(request.ratios or DEFAULT_RATIOS)), "seed": request.seed}
    blocks = next(iter(layout.values()))
    block = request.block or [b for b in blocks if b.startswith(blocks[0].split("_")[0] + "_")][-1]
    if block not in blocks:
        raise SpecError(f"{where}block", f"unknown block {block!r} for {backbone}; valid blocks: {', '.join(blocks)}")
    return {"block": block, "channels": request.channels, "keep_gates": request.keep_gates}


def _image_size(spec: dict[str, Any]) -> int:
    from workers.protocols import get_protocol

    return get_protocol(spec["protocol"], spec.get("overrides") or None).image_size


def create_analysis(session: Session, job_id: str, request: AnalysisRequest) -> Analysis:
    """A queued analysis of a succeeded job; NotReady (409) or SpecError (422) otherwise."""
    job = session.get(Job, job_id)
    if job is None:
        raise JobNotFound(job_id)
    if job.status != "succeeded":
        raise NotReady(f"job {job_id} is {job.status}; an analysis needs a job whose trials have all "
                          "succeeded (it loads their trained weights)")
    if (job.spec or {}).get("task") == "style_transfer":
        raise SpecError("kind", f"job {job_id} is a style_transfer job; analyses (pruning, channel_weights) are for "
                                "classification jobs")
    options = resolve_options(request, job.backbone, job.spec["variants"], _image_size(job.spec))
    analysis = Analysis(id=uuid.uuid4().hex, job_id=job_id, kind=request.kind, options=options,
                        status="queued", created_at=utcnow())
    session.add(analysis)
    session.commit()
    return analysis


def queue_requested(session: Session, job: Job) -> None:
    """The analyses a succeeded job asked for at submission, queued once (no commit)."""
    requested = job.spec.get("analyses") or []
    if job.status != "succeeded" or not requested:
        return
    if session.scalars(select(Analysis.id).where(Analysis.job_id == job.id).limit(1)).first():
        return
    for index, item in enumerate(requested):
        request = AnalysisRequest.model_validate(item)
        options = resolve_options(request, job.backbone, job.spec["variants"], _image_size(job.spec),
                                  f"analyses.{index}.")
        session.add(Analysis(id=uuid.uuid4().hex, job_id=job.id, kind=request.kind, options=options,
                             status="queued", created_at=utcnow()))


def get_analysis(session: Session, analysis_id: str) -> Analysis:
    analysis = session.get(Analysis, analysis_id)
    if analysis is None:
        raise AnalysisNotFound(analysis_id)
    return analysis


def list_analyses(session: Session, job_id: str) -> list[Analysis]:
    if session.get(Job, job_id) is None:
        raise JobNotFound(job_id)
    return list(session.scalars(select(Analysis).where(Analysis.job_id == job_id).order_by(Analysis.created_at)))


def describe(analysis: Analysis) -> dict[str, Any]:
    """The API's view of an analysis: its status, the parts' progress, result and plot names."""
    return {"id": analysis.id, "job_id": analysis.job_id, "kind": analysis.kind, "options": analysis.options,
            "status": analysis.status, "error": analysis.error,
            "progress": dict(Counter(part.status for part in analysis.parts)),
            "result": analysis.result, "plots": sorted(analysis.plots or {}),
            "created_at": analysis.created_at, "started_at": analysis.started_at,
            "finished_at": analysis.finished_at}
