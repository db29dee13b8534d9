"""The analyses routes' answers to bad input, and what a queued analysis looks like (no Ray needed)."""
from __future__ import annotations

from sqlalchemy import update

from service import db, jobs, planning
from service.models import Job, Trial
from service.schemas import JobSpec
from tests.service.conftest import TINY_DATASET


def make_job(db_url: str, variants: list[str], status: str = "succeeded") -> str:
    spec = JobSpec(dataset=TINY_DATASET, backbone="cifar_resnet20", variants=variants, folds=2,
                   overrides={"iterations": 2, "image_size": 16})
    with db.session_factory(db_url)() as session:
        job, _ = jobs.create_job(session, planning.plan(spec))
        session.execute(update(Job).where(Job.id == job.id).values(status=status))
        session.execute(update(Trial).where(Trial.job_id == job.id).values(status=status))
        session.commit()
        return job.id


def first_error(response) -> tuple[list, str]:
    detail = response.json()["detail"][0]
    return detail["loc"], detail["msg"]


def test_an_analysis_is_queued_with_its_options_resolved(client, db_url):
    job_id = make_job(db_url, ["baseline", "se", "srm"])
    created = client.post(f"/v1/jobs/{job_id}/analyses", json={"kind": "channel_weights"})
    assert created.status_code == 202 and created.json()["status"] == "queued"
    detail = client.get(f"/v1/analyses/{created.json()['id']}").json()
    # the last block of the first stage (ResNet-20 has 3 per stage), the paper's 64 channels
    assert detail["options"] == {"block": "conv2_3", "channels": 64, "keep_gates": False}
    assert detail["result"] is None and detail["plots"] == [] and detail["progress"] == {}
    pruning = client.post(f"/v1/jobs/{job_id}/analyses", json={"kind": "pruning", "ratios": [1, 0.5, 0.5]}).json()
    assert client.get(f"/v1/analyses/{pruning['id']}").json()["options"] == {"ratios": [0.5, 1.0], "seed": 0}
    default = client.post(f"/v1/jobs/{job_id}/analyses", json={"kind": "pruning"}).json()
    assert client.get(f"/v1/analyses/{default['id']}").json()["options"]["ratios"] == [
        0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    listed = client.get(f"/v1/jobs/{job_id}/analyses").json()
    assert [a["id"] for a in listed] == [created.json()["id"], pruning["id"], default["id"]]
    missing_plot = client.get(f"/v1/analyses/{pruning['id']}/plots/pruning.png")
    assert missing_plot.status_code == 404 and "none yet" in missing_plot.json()["detail"]


def test_bad_requests_name_the_field_and_what_is_valid(client, db_url):
    job_id = make_job(db_url, ["se", "srm"])
    url = f"/v1/jobs/{job_id}/analyses"
    loc, msg = first_error(client.post(url, json={"kind": "saliency"}))
    assert loc == ["body", "kind"] and "pruning" in msg and "channel_weights" in msg
    response = client.post(url, json={"kind": "pruning", "ratios": [0.5, 1.5]})
    assert response.status_code == 422 and first_error(response)[0] == ["body", "ratios", 1]
    response = client.post(url, json={"kind": "channel_weights", "block": "conv2_6"})
    loc, msg = first_error(response)
    assert response.status_code == 422 and loc == ["body", "block"]
    assert "unknown block 'conv2_6'" in msg and "conv2_1, conv2_2, conv2_3, conv3_1" in msg
    loc, msg = first_error(client.post(url, json={"kind": "pruning", "block": "conv2_1"}))
    assert loc == ["body", "block"] and "option of channel_weights" in msg
    assert client.post("/v1/jobs/nope/analyses", json={"kind": "pruning"}).status_code == 404
    assert client.get("/v1/analyses/nope").status_code == 404
    assert client.get("/v1/jobs/nope/analyses").status_code == 404


def test_a_job_that_has_not_succeeded_is_a_conflict(client, db_url):
    job_id = make_job(db_url, ["srm"], status="running")
    response = client.post(f"/v1/jobs/{job_id}/analyses", json={"kind": "pruning"})
    assert response.status_code == 409 and "is running" in response.json()["detail"]


def test_a_baseline_only_job_has_nothing_to_prune(client, db_url):
    job_id = make_job(db_url, ["baseline"])
    response = client.post(f"/v1/jobs/{job_id}/analyses", json={"kind": "pruning"})
    loc, msg = first_error(response)
    assert response.status_code == 422 and loc == ["body", "kind"] and "nothing to analyse" in msg


def test_analyses_asked_at_submission_are_checked_at_submission(client):
    body = {"dataset": TINY_DATASET, "backbone": "cifar_resnet20", "variants": ["se"], "folds": 2,
            "analyses": [{"kind": "pruning"}, {"kind": "channel_weights", "block": "conv9_1"}]}
    response = client.post("/v1/jobs", json=body)
    loc, msg = first_error(response)
    assert response.status_code == 422 and loc == ["body", "analyses", 1, "block"] and "valid blocks" in msg
    body["analyses"] = [{"kind": "pruning"}]
    assert client.post("/v1/jobs", json=body | {"variants": ["baseline"]}).status_code == 422
    assert client.post("/v1/jobs", json=body).status_code == 201
    presets = {p["name"]: p for p in client.get("/v1/presets").json()}
    assert presets["fig6-pruning-resnet50-imagenet"]["spec"]["analyses"] == [{"kind": "pruning"}]
    assert presets["fig8-correlation-resnet56-dtd"]["spec"]["analyses"] == [{"kind": "channel_weights"}]


def test_writes_need_the_token_and_openapi_lists_every_answer(client, db_url, monkeypatch):
    job_id = make_job(db_url, ["se"])
    monkeypatch.setenv("SRM_BENCH_API_TOKEN", "secret")
    assert client.post(f"/v1/jobs/{job_id}/analyses", json={"kind": "pruning"}).status_code == 401
    assert client.post(f"/v1/jobs/{job_id}/analyses", json={"kind": "pruning"},
                       headers={"Authorization": "Bearer secret"}).status_code == 202
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/v1/jobs/{job_id}/analyses"]["post"]["responses"]) == {"202", "400", "401", "404", "409", "422",
                                                                           "503"}
    assert set(paths["/v1/analyses/{analysis_id}/plots/{name}.png"]["get"]["responses"]) >= {"200", "404", "422"}
