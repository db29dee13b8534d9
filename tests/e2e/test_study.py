"""A study over two generated datasets, end to end on Ray, then a repeated job that reuses its trials."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.e2e.conftest import SRM_BENCH

pytestmark = pytest.mark.slow

DATASETS = ["textures[n_per_class=8,image_size=16]", "stylized_shapes[n_per_class=8,image_size=16]"]
COMMON = {"backbone": "cifar_resnet20", "variants": ["baseline", "se", "srm"], "folds": 2, "protocol": "quick",
          "overrides": {"iterations": 2, "image_size": 16}}


def _wait_study(server, study_id: str) -> dict:
    for job in server.http.get(f"/v1/studies/{study_id}").json()["jobs"]:
        server.wait_finished(job["id"], timeout=900)
    return server.http.get(f"/v1/studies/{study_id}").json()


@pytest.mark.timeout(1800)  # 14 short trials (2 of them reused); a loaded 2-core machine needs the time
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_study_over_two_datasets_then_a_repeated_job_reuses_repeat_zero(server, tmp_path):
    created = server.http.post("/v1/studies", json={"datasets": DATASETS, "name": "e2e", **COMMON},
                               headers={"Idempotency-Key": "study-1"})
    assert created.status_code == 201, created.text
    study = _wait_study(server, created.json()["id"])
    assert study["status"] == "succeeded", server.log_tail()

    results = server.http.get(f"/v1/studies/{study['id']}/results").json()
    assert [d["dataset"] for d in results["datasets"]] == DATASETS and results["excluded_datasets"] == []
    comparison = results["comparison"]
    assert comparison["n_datasets"] == 2 and sorted(comparison["average_ranks"]) == ["baseline", "se", "srm"]
    assert sum(comparison["average_ranks"].values()) == pytest.approx(6.0)  # 1 + 2 + 3 on each dataset
    assert comparison["friedman"] is not None and "no conclusion across datasets is possible" in comparison["note"]
    for dataset in results["datasets"]:
        gains = [r["gain"] for r in dataset["rows"] if r["gain"]]
        assert len(gains) == 2 and all(g["verdict"] in ("better", "equivalent", "worse", "undecided") for g in gains)
    png = server.http.get(f"/v1/studies/{study['id']}/plots/cd.png")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "cd.png").write_bytes(png.content)

    # The baseline on the first dataset with 2 repeats: repeat 0 is the study's work (reused), repeat 1 runs.
    job = server.http.post("/v1/jobs", json={"dataset": DATASETS[0], **COMMON, "variants": ["baseline"],
                                             "repeats": 2}).json()
    detail = server.wait_finished(job["id"], timeout=600)
    assert detail["status"] == "succeeded", server.log_tail()
    assert {(t["repeat"], t["fold"]) for t in detail["trials"] if t["reused"]} == {(0, 0), (0, 1)}
    assert all(t["attempts"] == 1 and not t["reused"] for t in detail["trials"] if t["repeat"] == 1)
    repeated = server.http.get(f"/v1/jobs/{job['id']}/results").json()
    assert repeated["n_folds"] == 4 and repeated["rows"][0]["n_trials"] == 4
    assert {(f["repeat"], f["num_train"] + f["num_eval"]) for f in repeated["folds"]} == {(0, 64), (1, 64)}

    env = {**server.env, "COLUMNS": "200"}
    first_job = results["datasets"][0]["job_id"]
    plan = subprocess.run([SRM_BENCH, "plan", first_job, "--effect", "1", "--url", server.url], env=env,
                          capture_output=True, text=True, timeout=120)
    assert plan.returncode == 0 and "repeats to detect 1" in plan.stdout, plan.stdout + plan.stderr
    table = subprocess.run([SRM_BENCH, "study", "results", study["id"], "--cd", str(tmp_path / "cli-cd.png"),
                            "--url", server.url], env=env, capture_output=True, text=True, timeout=120)
    assert table.returncode == 0 and "average rank" in table.stdout, table.stdout + table.stderr
    assert (tmp_path / "cli-cd.png").read_bytes() == png.content
    shutil.copy(tmp_path / "cd.png", server.home.parent / "study-cd.png")  # kept for a look after the run
