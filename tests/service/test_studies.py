"""Studies over the real app (no Ray): validation, one transaction, idempotency, results and plots."""
from __future__ import annotations

import uuid

import numpy as np
import pytest

from service.models import Job, Study, utcnow
from tests.service.conftest import TINY_DATASET
from tests.service.factories import finished_job

OTHER_TINY = "stylized_shapes[n_per_class=8,image_size=16]"


def study_body(**change):
    return {"datasets": [TINY_DATASET, OTHER_TINY], "backbone": "cifar_resnet20",
            "variants": ["baseline", "srm"], "folds": 2, "protocol": "quick",
            "overrides": {"iterations": 2, "image_size": 16}} | change


@pytest.mark.parametrize(("change", "field"), [
    ({"datasets": [TINY_DATASET]}, ["body", "datasets"]),
    ({"datasets": [TINY_DATASET, OTHER_TINY, TINY_DATASET]}, ["body", "datasets", 2]),
    ({"datasets": [TINY_DATASET, "no_such_dataset"]}, ["body", "datasets", 1]),
    ({"repeats": 21}, ["body", "repeats"]),
    ({"repeats": 0}, ["body", "repeats"]),
    ({"rope": -0.1}, ["body", "rope"]),
])
def test_bad_studies_are_422_naming_the_field(client, change, field):
    response = client.post("/v1/studies", json=study_body(**change))
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == field
    assert client.get("/v1/studies").json()["total"] == 0  # nothing half-created


def test_a_study_is_one_job_per_dataset_in_one_transaction_and_replays_its_key(client, sessions):
    created = client.post("/v1/studies", json=study_body(name="two", repeats=2), headers={"Idempotency-Key": "s1"})
    assert created.status_code == 201, created.text
    study = created.json()
    assert study["datasets"] == [TINY_DATASET, OTHER_TINY] and study["status"] == "queued"
    assert [j["dataset"] for j in study["jobs"]] == [TINY_DATASET, OTHER_TINY]
    assert all(j["n_trials"] == 2 * 2 * 2 for j in study["jobs"])  # 2 variants x 2 folds x 2 repeats
    replay = client.post("/v1/studies", json=study_body(name="two", repeats=2), headers={"Idempotency-Key": "s1"})
    assert replay.status_code == 201 and replay.json()["id"] == study["id"]
    assert replay.headers["Idempotent-Replayed"] == "true"
    conflict = client.post("/v1/studies", json=study_body(name="other"), headers={"Idempotency-Key": "s1"})
    assert conflict.status_code == 409
    listed = client.get("/v1/studies").json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == study["id"]
    job = client.get(f"/v1/jobs/{study['jobs'][0]['id']}").json()
    assert sorted({(t["repeat"], t["fold"]) for t in job["trials"]}) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    cancelled = client.delete(f"/v1/studies/{study['id']}").json()
    assert cancelled["status"] == "cancelled" and {j["status"] for j in cancelled["jobs"]} == {"cancelled"}
    assert client.get("/v1/studies/nope").status_code == 404


def test_a_study_preset_expands(client):
    presets = {p["name"]: p for p in client.get("/v1/presets").json()}
    assert presets["study-generated"]["kind"] == "study" and presets["demo"]["kind"] == "job"
    assert presets["study-generated"]["spec"]["datasets"] == ["textures", "stylized_shapes", "digits"]
    missing = client.post("/v1/studies", json={"preset": "study-real"})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "datasets", 0]


def _study_of_finished_jobs(sessions, per_dataset):
    with sessions() as session:
        study = Study(id=uuid.uuid4().hex, name="made", spec={"datasets": list(per_dataset)}, created_at=utcnow())
        session.add(study)
        session.commit()
        for dataset, top1 in per_dataset.items():
            finished_job(session, top1, dataset=dataset, study_id=study.id)
        return study.id


def test_results_rank_the_variants_over_datasets_and_draw_the_cd_diagram(client, sessions, tmp_path):
    rng = np.random.default_rng(5)
    per_dataset = {}
    for i, name in enumerate(["a", "b", "c", "d"]):
        base = 60 + 5 * i + rng.normal(0, 1, 5)
        per_dataset[name] = {"baseline": list(base), "se": list(base + 1 + rng.normal(0, 0.3, 5)),
                             "srm": list(base + 2 + rng.normal(0, 0.3, 5))}
    study_id = _study_of_finished_jobs(sessions, per_dataset)
    results = client.get(f"/v1/studies/{study_id}/results").json()
    assert [d["dataset"] for d in results["datasets"]] == ["a", "b", "c", "d"]
    assert results["datasets"][0]["rows"][2]["gain"]["verdict"] in ("better", "undecided")
    comparison = results["comparison"]
    assert comparison["average_ranks"] == {"baseline": 3.0, "se": 2.0, "srm": 1.0}
    assert comparison["friedman"]["pvalue"] < 0.05 and comparison["groups"]
    plan = client.get(f"/v1/studies/{study_id}/plan", params={"effect": 1.0}).json()
    assert [j["dataset"] for j in plan["jobs"]] == ["a", "b", "c", "d"]
    assert client.get(f"/v1/studies/{study_id}/plan", params={"effect": 0}).json()["detail"][0]["loc"] == \
        ["query", "effect"]
    png = client.get(f"/v1/studies/{study_id}/plots/cd.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(f"/v1/studies/{study_id}/plots/nope.png").status_code == 404


def test_a_study_without_complete_datasets_has_no_diagram_and_says_why(client, sessions):
    with sessions() as session:
        study = Study(id=uuid.uuid4().hex, name="empty", spec={"datasets": ["a", "b"]}, created_at=utcnow())
        session.add(study)
        session.add(Job(id=uuid.uuid4().hex, spec={}, status="queued", dataset="a", backbone="cifar_resnet20",
                        protocol="quick", protocol_hash="q" * 64, n_trials=0, cancel_requested=False,
                        created_at=utcnow(), study_id=study.id))
        session.commit()
    results = client.get(f"/v1/studies/{study.id}/results").json()
    assert results["comparison"] is None and "needs at least 2" in results["note"]
    response = client.get(f"/v1/studies/{study.id}/plots/cd.png")
    assert response.status_code == 409 and "needs at least 2" in response.json()["detail"]


def test_job_plan_and_its_422s(client, sessions):
    with sessions() as session:
        job = finished_job(session, {"baseline": [60.0, 62.0, 61.0, 63.0, 59.0],
                                     "srm": [61.0, 62.5, 62.0, 63.0, 60.5]})
    plan = client.get(f"/v1/jobs/{job.id}/plan", params={"effect": 0.5}).json()
    srm = plan["variants"][0]
    assert srm["variant"] == "srm" and srm["n_pairs"] == 5 and srm["test_train_ratio"] == pytest.approx(0.25)
    assert srm["detectable_effect"] > srm["floor_effect"] > 0
    for bad in (0, -1):
        response = client.get(f"/v1/jobs/{job.id}/plan", params={"effect": bad})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "effect"]
    assert client.get("/v1/jobs/nope/plan").status_code == 404
