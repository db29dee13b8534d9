"""A job's report: one self-contained HTML page (results table and plots, images embedded).

Made once, when the job ends, stored under SRM_BENCH_HOME/reports/ and logged as an artifact of
the job's MLflow run; requests serve the stored file. A finished job without a stored report
(one that ended before reports existed, or whose dispatcher ran on another machine) gets it made
on its first request, then stored like the others.
"""
from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import settings
from service.errors import JobNotFinished, JobNotFound
from service.models import FINISHED, Job, Trial
from service.results import job_results, table_rows
from service.style import is_style_job

log = logging.getLogger("srm_bench.reports")
ARTIFACT_NAME = "report.html"
templates = Environment(loader=PackageLoader("service", "templates"), autoescape=select_autoescape(["html"]))


def report_path(name: str) -> Path:
    """Where a report is stored: ``<job id>.html`` or ``study-<study id>.html``."""
    return settings.home() / "reports" / f"{name}.html"


def _histories(session: Session, job_id: str) -> dict[str, list[list[dict]]]:
    """Per variant, each succeeded trial's per-epoch history (train and validation curves)."""
    histories: dict[str, list[list[dict]]] = defaultdict(list)
    rows = session.execute(select(Trial.variant, Trial.metrics).where(Trial.job_id == job_id,
                                                                      Trial.status == "succeeded")
                           .order_by(Trial.id))
    for variant, metrics in rows:
        if (metrics or {}).get("history"):
            histories[variant].append(metrics["history"])
    return histories


def render_job_report(session: Session, job: Job) -> str:
    """The report's HTML, from SQL alone."""
    from service import report_plots  # matplotlib: loaded by the processes that draw, not by every API worker
    if is_style_job(job):
        from service.style.report import render_style_report

        return render_style_report(session, job)
    results = job_results(session, job)
    variants = [row["variant"] for row in results["rows"]]
    figures = [
        ("Per-fold top-1", "Each point is one fold's held-out top-1; the box spans the quartiles.",
         report_plots.fold_accuracies(variants, results["folds"])),
        ("Paired differences against the baseline",
         "Each variant's top-1 minus the baseline's on the same fold and seed; the bar is the mean "
         "difference with its 95% confidence interval (Student t over the folds).",
         report_plots.paired_differences(results["rows"], results["folds"])),
        ("Training and validation curves",
         "Per variant, the mean over folds of each epoch's value; the band is ± 1 standard deviation.",
         report_plots.training_curves(variants, _histories(session, job.id))),
    ]
    header, cells = table_rows(results)
    return templates.get_template("job_report.html").render(
        job=job, results=results, header=header, cells=cells,
        figures=[{"title": t, "caption": c, "src": report_plots.png_data_uri(f)} for t, c, f in figures if f],
        missing=[t for t, _, f in figures if f is None])


def _store(name: str, html: str) -> Path:
    path = report_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(html, encoding="utf-8")
    partial.replace(path)  # readers never see half a report
    return path


def _log_to_mlflow(run_id: str | None, html: str) -> None:
    if not run_id:
        return
    from workers.tracking import client

    client().log_text(run_id, html, ARTIFACT_NAME)


def publish_job_report(session: Session, job_id: str) -> Path | None:
    """Make, store and log a finished job's report; errors are logged (the job's numbers are in SQL)."""
    try:
        job = session.get(Job, job_id)
        html = render_job_report(session, job)
        path = _store(job_id, html)
        _log_to_mlflow(job.mlflow_run_id, html)
        if is_style_job(job):  # its curves and stylized grid as artifacts of its own
            from service.style.report import log_plots

            log_plots(session, job)
        return path
    except Exception:
        log.exception("job %s: could not make its report", job_id)
        return None


def job_report(session: Session, job_id: str) -> str:
    """The stored report of a finished job (made now if it has none yet)."""
    job = session.get(Job, job_id)
    if job is None:
        raise JobNotFound(job_id)
    if job.status not in FINISHED:
        raise JobNotFinished(job_id, job.status)
    return read_or_make(job_id, lambda: render_job_report(session, job))


def read_or_make(name: str, render) -> str:
    """The stored report ``name``; made with ``render()`` and stored when there is none yet."""
    path = report_path(name)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    html = render()
    _store(name, html)
    return html

