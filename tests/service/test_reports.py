"""Job reports: the route's answers, the stored page, its images, and the numbers the plots draw."""
from __future__ import annotations

import base64
import io
import re
import uuid

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from PIL import Image
from scipy import stats

from service import report_plots, reports
from tests.service.factories import finished_job, queued_job

TOP1 = {"baseline": [60.0, 62.0, 61.0], "srm": [63.0, 62.5, 64.0], "se": [61.0, 63.0, 60.5]}


def _with_histories(session, job):
    """Give every trial a three-epoch history, as run_trial reports it."""
    for trial in job.trials:
        offset = trial.fold + len(trial.variant)
        trial.metrics = {**trial.metrics, "history": [
            {"epoch": e, "train_loss": 2.0 / e + 0.01 * offset, "val_loss": 2.2 / e, "train_acc": 20.0 * e + offset,
             "val_top1": 18.0 * e + offset} for e in (1, 2, 3)]}
    session.commit()
    return job


def _images(html: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(data)))
            for data in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_report_of_a_finished_job_is_one_page_with_its_table_and_three_plots(client, sessions, srm_home):
    with sessions() as session:
        job = _with_histories(session, finished_job(session, TOP1))
        job_id = job.id
    response = client.get(f"/v1/jobs/{job_id}/report")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "<script" not in html and "http" not in html.split("<body>")[1]  # opens from a file, alone
    for variant in TOP1:
        assert f"<td>{variant}</td>" in html
    assert "<td>61.00 ± 1.00</td>" in html  # the baseline's 60, 62, 61: mean 61, sample std 1
    images = _images(html)
    assert len(images) == 3 and all(image.format == "PNG" and image.width > 300 for image in images)
    stored = reports.report_path(job_id)
    assert stored.read_text(encoding="utf-8") == html


def test_the_stored_report_is_served_not_made_again(client, sessions, srm_home):
    with sessions() as session:
        job_id = finished_job(session, TOP1).id
    first = client.get(f"/v1/jobs/{job_id}/report").text
    path = reports.report_path(job_id)
    path.write_text(first.replace("</body>", "<p>stored copy</p></body>"), encoding="utf-8")
    assert "stored copy" in client.get(f"/v1/jobs/{job_id}/report").text


def test_a_job_without_curves_still_gets_its_other_plots(client, sessions, srm_home):
    with sessions() as session:
        job_id = finished_job(session, TOP1).id
    html = client.get(f"/v1/jobs/{job_id}/report").text
    assert len(_images(html)) == 2
    assert "Not drawn (no trial of this job has the data): Training and validation curves" in html


def test_an_unfinished_job_has_no_report_yet(client, sessions, srm_home):
    with sessions() as session:
        job_id = queued_job(session).id
    response = client.get(f"/v1/jobs/{job_id}/report")
    assert response.status_code == 409
    assert response.json()["detail"] == (f"job {job_id} is queued; its report is made when it ends "
                                         "(succeeded, failed or cancelled)")


def test_report_route_lists_its_answers_in_openapi(client):
    answers = client.get("/openapi.json").json()["paths"]["/v1/jobs/{job_id}/report"]["get"]["responses"]
    assert {"200", "404", "409"} <= set(answers) and "text/html" in answers["200"]["content"]


def test_paired_differences_plot_draws_the_mean_and_t_interval_of_the_differences():
    rows = [{"variant": v, "gain": None} for v in TOP1]
    folds = [{"variant": v, "fold": f, "seed": 0, "status": "succeeded", "top1": t}
             for v, values in TOP1.items() for f, t in enumerate(values)]
    figure = report_plots.paired_differences(rows, folds)
    bars = [c for c in figure.axes[0].containers if isinstance(c, ErrorbarContainer)]
    for bar, variant in zip(bars, ["srm", "se"], strict=False):
        diffs = np.subtract(TOP1[variant], TOP1["baseline"])
        low, high = stats.t.interval(0.95, len(diffs) - 1, loc=diffs.mean(), scale=stats.sem(diffs))
        (x,), _ = bar.lines[0].get_data()
        segment = bar.lines[2][0].get_segments()[0]
        assert x == pytest.approx(diffs.mean())
        assert sorted(p[0] for p in segment) == pytest.approx([low, high])


def test_curve_band_is_the_mean_and_sample_std_over_the_folds_that_reach_each_epoch():
    epochs, mean, std = report_plots._mean_and_std([[1.0, 2.0, 3.0], [3.0, 4.0], [5.0, 6.0]])
    assert list(epochs) == [1, 2, 3]
    assert list(mean) == pytest.approx([3.0, 4.0, 3.0])
    assert list(std) == pytest.approx([2.0, 2.0, 0.0])  # sample std of (1, 3, 5) and of (2, 4, 6); one value: 0


def test_study_report_has_the_ranks_the_cd_diagram_and_every_dataset(client, sessions, srm_home):
    from tests.service.test_studies import _study_of_finished_jobs

    per_dataset = {name: {"baseline": [60.0 + i, 61.0 + i, 62.0], "se": [61.5 + i, 62.0 + i, 63.5],
                          "srm": [63.0 + i, 63.5 + i, 64.0]} for i, name in enumerate(["a", "b", "c", "d"])}
    study_id = _study_of_finished_jobs(sessions, per_dataset)
    response = client.get(f"/v1/studies/{study_id}/report")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    # srm is best on every dataset, then se, then baseline: average ranks 1, 2, 3.
    ranks = r"<td>srm</td><td>1\.00</td>.*<td>se</td><td>2\.00</td>.*<td>baseline</td><td>3\.00</td>"
    assert re.search(ranks, html, re.S)
    assert all(f"<h2>{name}</h2>" in html for name in per_dataset)
    (cd,) = _images(html)
    assert cd.format == "PNG" and cd.width > 300
    assert reports.report_path(f"study-{study_id}").read_text(encoding="utf-8") == html
    assert client.get("/v1/studies/nope/report").status_code == 404


def test_a_study_with_a_job_still_queued_has_no_report_yet(client, sessions, srm_home):
    from service.models import Study, utcnow

    with sessions() as session:
        study = Study(id=uuid.uuid4().hex, name="waiting", spec={"datasets": ["textures"]}, created_at=utcnow())
        session.add(study)
        session.commit()
        job = queued_job(session)
        job.study_id = study.id
        session.commit()
        study_id = study.id
    response = client.get(f"/v1/studies/{study_id}/report")
    assert response.status_code == 409
    assert response.json()["detail"] == (f"study {study_id} is queued; its report is made when all its jobs "
                                         "have ended")
