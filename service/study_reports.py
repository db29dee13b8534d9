"""A finished study's report: one self-contained HTML page with its rank table, the critical
difference diagram and each dataset's results table.

Made on the first request once every job of the study has ended, stored under
SRM_BENCH_HOME/reports/study-<id>.html and served from there afterwards.
"""
from __future__ import annotations

import base64

from sqlalchemy.orm import Session

from service import studies
from service.errors import NotReady
from service.reports import read_or_make, templates
from service.results import table_rows


def render_study_report(session: Session, study_id: str) -> str:
    results = studies.study_results(session, study_id)
    comparison = results["comparison"] or {}
    ranks = sorted((comparison.get("average_ranks") or {}).items(), key=lambda item: item[1])
    try:
        cd = "data:image/png;base64," + base64.b64encode(studies.cd_png(session, study_id)).decode("ascii")
    except NotReady:  # fewer than 2 complete datasets, or fewer than 3 variants: the note says why
        cd = None
    tables = []
    for item in results["datasets"]:
        header, cells = table_rows({"rows": item["rows"]})
        tables.append({"dataset": item["dataset"], "job_id": item["job_id"], "status": item["status"],
                       "header": header, "cells": cells})
    return templates.get_template("study_report.html").render(
        results=results, comparison=comparison, ranks=ranks, cd=cd, tables=tables)


def study_report(session: Session, study_id: str) -> str:
    """The stored report of a study whose jobs have all ended (made now on the first request)."""
    study = studies.get_study(session, study_id)
    state = studies.status(study)
    if state in ("queued", "running"):
        raise NotReady(f"study {study_id} is {state}; its report is made when all its jobs have ended")
    return read_or_make(f"study-{study_id}", lambda: render_study_report(session, study_id))
