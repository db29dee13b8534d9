"""One `serve` runs several jobs at once (SRM_BENCH_MAX_RUNNING_JOBS, default 4) on the shared local Ray."""
from __future__ import annotations

import time

import pytest

from tests.e2e.test_serve import tiny_job


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_two_jobs_train_at_the_same_moment_and_both_succeed(server):
    # half a CPU per trial: the session's 2-CPU Ray fits both jobs' trials at once
    spec = tiny_job(variants=["baseline"], resources={"cpus": 0.5}, overrides={"iterations": 60, "image_size": 16})
    jobs = [server.http.post("/v1/jobs", json=spec | {"seeds": [seed]}).json()["id"] for seed in (1, 2)]
    both_training = None
    deadline = time.monotonic() + 240
    while both_training is None and time.monotonic() < deadline:
        details = [server.http.get(f"/v1/jobs/{job_id}").json() for job_id in jobs]
        if all(any(t["status"] == "running" for t in d["trials"]) for d in details):
            both_training = details
        elif any(d["status"] in ("succeeded", "failed", "cancelled") for d in details):
            break
        time.sleep(0.2)
    assert both_training is not None, f"the two jobs never trained at the same moment: {server.log_tail()}"
    assert [d["status"] for d in both_training] == ["running", "running"]
    finished = [server.wait_finished(job_id, timeout=300) for job_id in jobs]
    assert [d["status"] for d in finished] == ["succeeded", "succeeded"], [d["error"] for d in finished]
    assert all(t["status"] == "succeeded" and t["top1"] is not None for d in finished for t in d["trials"])
    # in SQL's own times too: each job started before the other finished
    first, second = finished
    assert first["started_at"] < second["finished_at"] and second["started_at"] < first["finished_at"]
