"""A style-transfer job's plots: the loss curves per variant (Fig. 5: mean over seeds with a ± 1 std band)
and the stylized grid (Figs. 4 and 9: the held-out content images, then one row per variant).

Both are drawn from SQL alone (the trials' stored results) on bare matplotlib Figures (Agg).
"""
from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import JobNotFound, NotReady
from service.models import Job, Trial
from service.style import is_style_job

PLOTS = ("curves", "stylized")


def _succeeded(session: Session, job_id: str) -> tuple[Job, list[Trial]]:
    job = session.get(Job, job_id)
    if job is None:
        raise JobNotFound(job_id)
    if not is_style_job(job):
        raise LookupError(f"job {job_id} is a classification job; {', '.join(PLOTS)} are style_transfer plots")
    trials = list(session.scalars(select(Trial).where(Trial.job_id == job_id, Trial.status == "succeeded")
                                  .order_by(Trial.id)))
    if not trials:
        raise NotReady(f"job {job_id} ({job.status}) has no succeeded trial yet: nothing to draw")
    return job, trials


def _variant_order(job: Job, trials: list[Trial]) -> list[str]:
    present = {t.variant for t in trials}
    return [v for v in (job.spec or {}).get("variants", []) if v in present]


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def curves_png(session: Session, job_id: str) -> bytes:
    """Style and content loss against training step: per variant the mean over seeds, the band ± 1 std."""
    from matplotlib.figure import Figure

    job, trials = _succeeded(session, job_id)
    histories: dict[str, list[list[dict]]] = defaultdict(list)
    for trial in trials:
        histories[trial.variant].append((trial.metrics or {}).get("history") or [])
    figure = Figure(figsize=(10, 4))
    axes = figure.subplots(1, 2)
    for variant in _variant_order(job, trials):
        runs = [h for h in histories[variant] if h]
        length = min(len(h) for h in runs)
        steps = [p["step"] for p in runs[0][:length]]
        for axis, key in zip(axes, ("style_loss", "content_loss"), strict=True):
            values = np.array([[p[key] for p in h[:length]] for h in runs])
            mean, std = values.mean(axis=0), values.std(axis=0, ddof=1) if len(values) > 1 else 0 * values[0]
            line, = axis.plot(steps, mean, label=f"{variant.upper()} (n={len(runs)})")
            axis.fill_between(steps, np.maximum(mean - std, mean * 1e-3), mean + std, color=line.get_color(),
                              alpha=0.2)
    for axis, key in zip(axes, ("style loss", "content loss"), strict=True):
        axis.set(xlabel="training step", ylabel=key, yscale="log")
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.suptitle(f"{job.name or job.id[:8]}: training losses, mean over seeds ± 1 std")
    figure.tight_layout()
    return _png(figure)


def _image(encoded: str) -> np.ndarray:
    from workers.style.tracking import png_image

    return np.asarray(png_image(encoded))


MIN_CELL = 96  # tiny images are enlarged (nearest neighbour) to at least this many pixels per side
GAP = 6


def _canvas(rows: list[np.ndarray]) -> tuple[np.ndarray, list[float]]:
    """The rows stacked on a white canvas (each enlarged by the same whole factor), and each row's centre."""
    cell = min(image.shape[0] for image in rows)
    factor = max(1, -(-MIN_CELL // cell))
    rows = [image.repeat(factor, axis=0).repeat(factor, axis=1) for image in rows]
    width = max(image.shape[1] for image in rows)
    canvas = np.full((sum(r.shape[0] for r in rows) + GAP * (len(rows) - 1), width, 3), 255, dtype=np.uint8)
    centres, top = [], 0
    for image in rows:
        canvas[top:top + image.shape[0], :image.shape[1]] = image
        centres.append(top + image.shape[0] / 2)
        top += image.shape[0] + GAP
    return canvas, centres


def stylized_png(session: Session, job_id: str) -> bytes:
    """The style image, the held-out content images, then each variant's stylization of them (its lowest
    succeeded seed), one row each."""
    from matplotlib.figure import Figure

    job, trials = _succeeded(session, job_id)
    first: dict[str, Trial] = {}
    for trial in sorted(trials, key=lambda t: t.seed):
        if (trial.metrics or {}).get("stylized_png"):
            first.setdefault(trial.variant, trial)
    if not first:
        raise NotReady(f"job {job_id}: its trials kept no stylized images (no held-out content images)")
    any_trial = next(iter(first.values())).metrics
    labelled = [("style", _image(any_trial["style_png"])), ("content", _image(any_trial["content_png"]))]
    labelled += [(f"{v.upper()} (seed {first[v].seed})", _image(first[v].metrics["stylized_png"]))
                 for v in _variant_order(job, trials) if v in first]
    canvas, centres = _canvas([image for _, image in labelled])
    dpi = 100
    figure = Figure(figsize=((canvas.shape[1] + 150) / dpi, (canvas.shape[0] + 50) / dpi), dpi=dpi)
    axis = figure.add_axes((140 / (canvas.shape[1] + 150), 10 / (canvas.shape[0] + 50),
                            canvas.shape[1] / (canvas.shape[1] + 150), canvas.shape[0] / (canvas.shape[0] + 50)))
    axis.imshow(canvas, interpolation="nearest")
    axis.set_xticks([])
    axis.set_yticks(centres, [label for label, _ in labelled], fontsize=9)
    axis.tick_params(length=0)
    for side in axis.spines.values():
        side.set_visible(False)
    figure.suptitle(f"{(job.spec or {}).get('style_image')} on held-out content images", fontsize=10,
                    y=1 - 8 / (canvas.shape[0] + 50), va="top")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


JOB_PLOTS: dict[str, Any] = {"curves": curves_png, "stylized": stylized_png}
