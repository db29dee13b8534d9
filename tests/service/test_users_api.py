"""Users, tokens and quotas through the real app (in-process, SQLite and PostgreSQL)."""
from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from service import users
from service.cli import app as cli
from service.models import Job, User
from tests.service.conftest import TINY_DATASET
from tests.service.test_studies import study_body

SPEC = {"dataset": TINY_DATASET, "backbone": "cifar_resnet20", "variants": ["baseline", "srm"], "folds": 2,
        "overrides": {"iterations": 2}}
BOOTSTRAP = "bootstrap-secret"


@pytest.fixture()
def people(client, sessions, monkeypatch):
    """Writes closed by the bootstrap token; two users with their own tokens."""
    monkeypatch.setenv("SRM_BENCH_API_TOKEN", BOOTSTRAP)
    with sessions() as session:
        tokens = {name: users.add_user(session, name) for name in ("ann", "bob")}
    return {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()} | {
        "admin": {"Authorization": f"Bearer {BOOTSTRAP}"}}


def test_user_add_prints_the_token_once_and_sql_keeps_only_its_hash(db_url, srm_home, sessions, monkeypatch):
    monkeypatch.setenv("SRM_BENCH_DATABASE_URL", db_url)
    result = CliRunner().invoke(cli, ["user", "add", "carol", "--admin"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("srmb_") and len(token) > 40
    with sessions() as session:
        row = session.get(User, "carol")
        assert row.is_admin and row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
        assert token not in repr([getattr(row, c.key) for c in User.__table__.columns])
        assert users.caller_for(session, token, None) == users.Caller("carol", True)
    again = CliRunner().invoke(cli, ["user", "add", "carol"])
    assert again.exit_code == 1 and "already exists" in again.output and "Traceback" not in again.output
    assert CliRunner().invoke(cli, ["token", "revoke", "carol"]).exit_code == 0
    with sessions() as session:
        assert users.caller_for(session, token, None) is None
    missing = CliRunner().invoke(cli, ["token", "revoke", "nobody"])
    assert missing.exit_code == 1 and "no user 'nobody'" in missing.output


def test_jobs_record_and_list_who_submitted_them(client, people):
    ann_job = client.post("/v1/jobs", json=SPEC, headers=people["ann"]).json()["id"]
    admin_job = client.post("/v1/jobs", json=SPEC, headers=people["admin"]).json()["id"]
    listed = {j["id"]: j["submitted_by"] for j in client.get("/v1/jobs").json()["items"]}
    assert listed == {ann_job: "ann", admin_job: "admin"}
    assert client.get(f"/v1/jobs/{ann_job}").json()["submitted_by"] == "ann"
    assert [j["id"] for j in client.get("/v1/jobs", params={"submitted_by": "ann"}).json()["items"]] == [ann_job]


def test_writes_need_a_known_token(client, people):
    assert client.post("/v1/jobs", json=SPEC).status_code == 401
    wrong = client.post("/v1/jobs", json=SPEC, headers={"Authorization": "Bearer not-a-token"})
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.json()["detail"]
    assert wrong.headers["WWW-Authenticate"] == "Bearer"


def test_only_the_submitter_or_an_admin_may_cancel(client, people):
    first = client.post("/v1/jobs", json=SPEC, headers=people["ann"]).json()["id"]
    second = client.post("/v1/jobs", json=SPEC, headers=people["ann"]).json()["id"]
    refused = client.delete(f"/v1/jobs/{first}", headers=people["bob"])
    assert refused.status_code == 403
    assert refused.json()["detail"] == (f"job {first} was submitted by 'ann'; only 'ann' or an admin may cancel it "
                                        "(you are 'bob')")
    assert client.get(f"/v1/jobs/{first}").json()["status"] == "queued"  # nothing changed
    assert client.delete(f"/v1/jobs/{first}", headers=people["ann"]).json()["status"] == "cancelled"
    assert client.delete(f"/v1/jobs/{second}", headers=people["admin"]).json()["status"] == "cancelled"


def test_only_the_submitter_or_an_admin_may_cancel_a_study(client, people):
    study = client.post("/v1/studies", json=study_body(), headers=people["ann"]).json()
    assert study["submitted_by"] == "ann"
    refused = client.delete(f"/v1/studies/{study['id']}", headers=people["bob"])
    assert refused.status_code == 403 and "only 'ann' or an admin" in refused.json()["detail"]
    cancelled = client.delete(f"/v1/studies/{study['id']}", headers=people["ann"]).json()
    assert {j["status"] for j in cancelled["jobs"]} == {"cancelled"}


def test_a_revoked_token_stops_working_at_once(client, people, sessions):
    assert client.post("/v1/jobs", json=SPEC, headers=people["bob"]).status_code == 201
    with sessions() as session:
        users.revoke_token(session, "bob")
    assert client.post("/v1/jobs", json=SPEC, headers=people["bob"]).status_code == 401


def test_reads_are_open_unless_a_read_token_is_required(client, people, monkeypatch):
    assert client.get("/v1/jobs").status_code == 200
    monkeypatch.setenv("SRM_BENCH_READ_TOKEN_REQUIRED", "1")
    closed = client.get("/v1/jobs")
    assert closed.status_code == 401 and "SRM_BENCH_READ_TOKEN_REQUIRED=1" in closed.json()["detail"]
    assert client.get("/v1/leaderboard").status_code == 401
    assert client.get("/v1/jobs", headers=people["ann"]).status_code == 200
    assert client.get("/healthz").status_code in (200, 503)  # health stays open for load balancers


def test_a_job_over_the_trial_limit_is_refused_with_the_count_and_the_limit(client, people, monkeypatch):
    monkeypatch.setenv("SRM_BENCH_MAX_TRIALS_PER_JOB", "7")
    response = client.post("/v1/jobs", json=SPEC | {"seeds": [0, 1]}, headers=people["admin"])  # 2 x 2 x 2
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"].startswith("this job has 8 trials (variants x folds x repeats x "
                                                          "seeds); the limit is 7 per job")
    assert client.post("/v1/jobs", json=SPEC, headers=people["admin"]).status_code == 201  # 4 trials
    study = client.post("/v1/studies", json=study_body(seeds=[0, 1]), headers=people["ann"])
    assert study.status_code == 422 and study.json()["detail"][0]["loc"] == ["body", "datasets", 0]


def test_queued_jobs_per_user_are_limited_with_retry_after(client, people, sessions, monkeypatch):
    monkeypatch.setenv("SRM_BENCH_MAX_QUEUED_JOBS_PER_USER", "3")
    for _ in range(2):
        assert client.post("/v1/jobs", json=SPEC, headers=people["ann"]).status_code == 201
    too_many = client.post("/v1/studies", json=study_body(), headers=people["ann"])  # 2 jobs: 4 > 3
    assert too_many.status_code == 429 and too_many.headers["Retry-After"] == "60"
    assert "has 2 queued job(s); 2 more would pass the limit of 3" in too_many.json()["detail"]
    assert client.post("/v1/jobs", json=SPEC, headers=people["ann"]).status_code == 201  # the 3rd fits
    refused = client.post("/v1/jobs", json=SPEC, headers=people["ann"])
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert client.post("/v1/jobs", json=SPEC, headers=people["bob"]).status_code == 201  # bob has his own
    assert client.post("/v1/jobs", json=SPEC, headers=people["admin"]).status_code == 201  # admins: no quota
    with sessions() as session:  # a started job frees a place in the queue
        job = session.scalars(select(Job).where(Job.submitted_by == "ann")).first()
        job.status = "running"
        session.commit()
    assert client.post("/v1/jobs", json=SPEC, headers=people["ann"]).status_code == 201
    with sessions() as session:
        assert session.scalar(select(Job.id).where(Job.submitted_by == "ann", Job.status == "queued")
                              .limit(1).offset(3)) is None  # never more than 3 queued
