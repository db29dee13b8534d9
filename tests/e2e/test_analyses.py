"""Analyses end to end: the real `srm-bench serve`, local Ray, MLflow store and SQL.

A tiny SE/SRM job asks for both analyses at submission; the results are checked against the
trials' own numbers (ratio-0 identity), SciPy and numpy (correlation sums on the kept gates);
then missing weights, the CLI, and a kill of the server mid-analysis.
"""
from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib.image import imread
from mlflow.tracking import MlflowClient
from scipy import stats
from sqlalchemy import select, update

from service.db import session_factory
from service.models import AnalysisTrial, Trial
from tests.e2e.conftest import SRM_BENCH

pytestmark = pytest.mark.slow

TINY = "textures[n_per_class=8,image_size=16]"


def tiny_job(**change) -> dict:
    return {"dataset": TINY, "backbone": "cifar_resnet20", "variants": ["se", "srm"], "folds": 2,
            "protocol": "quick", "overrides": {"iterations": 4, "image_size": 16}} | change


def wait_analysis(server, analysis_id: str, predicate, timeout: float = 600) -> dict:
    return server.poll(f"/v1/analyses/{analysis_id}", predicate, timeout, poll=0.2)


def finished(detail: dict) -> bool:
    return detail["status"] in ("succeeded", "failed")


def check_png(server, analysis: dict, name: str) -> None:
    response = server.http.get(f"/v1/analyses/{analysis['id']}/plots/{name}.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(io.BytesIO(response.content), format="png")
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 300
    assert pixels[..., :3].std() > 0.05  # something is drawn, not a blank canvas
    (server.home / f"seen-{name}.png").write_bytes(response.content)  # kept with the test's files, to look at


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_analyses_asked_at_submission_run_when_the_job_ends(server):
    job = tiny_job(analyses=[{"kind": "pruning", "ratios": [0, 0.25, 0.5, 0.75, 1]},
                             {"kind": "channel_weights", "block": "conv3_2", "keep_gates": True}])
    job_id = server.http.post("/v1/jobs", json=job).json()["id"]
    assert server.wait_finished(job_id, timeout=900)["status"] == "succeeded", server.log_tail()
    listed = wait_analysis_list(server, job_id)
    pruning, weights = (next(a for a in listed if a["kind"] == kind) for kind in ("pruning", "channel_weights"))
    pruning = wait_analysis(server, pruning["id"], finished)
    weights = wait_analysis(server, weights["id"], finished)
    assert pruning["status"] == weights["status"] == "succeeded", (pruning, weights, server.log_tail())
    assert pruning["progress"] == weights["progress"] == {"succeeded": 4}

    sessions = session_factory(server.env["SRM_BENCH_DATABASE_URL"])
    with sessions() as session:
        trials = {t.id: t for t in session.scalars(select(Trial).where(Trial.job_id == job_id))}
        parts = {(p.analysis_id, p.trial_id): p.result for p in session.scalars(select(AnalysisTrial))}
    assert all(t.weights_uri == f"runs:/{t.mlflow_run_id}/checkpoint/last.pt" for t in trials.values())

    # pruning: ratio 0 is each trial's own held-out top-1 (same CPU), AUCs by the trapezoid rule
    result = pruning["result"]
    assert result["ratios"] == [0, 0.25, 0.5, 0.75, 1] and result["stages"] == ["2", "3", "4"]
    for trial_id, trial in trials.items():
        curves = parts[(pruning["id"], trial_id)]["stages"]
        for stage, by_order in curves.items():
            assert abs(by_order["gate"][0] - trial.top1) < 0.01 and abs(by_order["random"][0] - trial.top1) < 0.01
            by_hand = sum(0.25 * (a + b) / 2 for a, b in zip(by_order["gate"], by_order["gate"][1:], strict=False))
            row = next(r for r in result["trials"] if r["trial_id"] == trial_id)
            assert row["auc"][stage]["gate"] == pytest.approx(by_hand)
    for variant in ("se", "srm"):
        rows = sorted((r for r in result["trials"] if r["variant"] == variant), key=lambda r: r["fold"])
        for stage in result["stages"]:
            learned = [r["auc"][stage]["gate"] for r in rows]
            random = [r["auc"][stage]["random"] for r in rows]
            entry = result["auc"][variant][stage]
            assert entry["gate"]["mean"] == pytest.approx(np.mean(learned))
            assert entry["gate"]["std"] == pytest.approx(np.std(learned, ddof=1))
            if entry["gate_vs_random"]["t_pvalue"] is not None:
                assert entry["gate_vs_random"]["t_pvalue"] == pytest.approx(stats.ttest_rel(learned, random).pvalue)
    check_png(server, pruning, "pruning")

    # channel weights: the sums against numpy on the kept per-image weights
    result = weights["result"]
    assert result["block"] == "conv3_2"
    for trial_id in trials:
        part = parts[(weights["id"], trial_id)]
        with np.load(part["gates_file"]) as kept:
            total = 0.0
            for name in kept.files:
                values = kept[name].astype(np.float64)
                values = values[:, values.max(axis=0) > values.min(axis=0)]  # constant channels have no r
                total += float(np.sum(np.corrcoef(values, rowvar=False) ** 2))
            chosen = kept["conv3_2"][:, :64]
        assert part["total"]["with_diagonal"] == pytest.approx(total, rel=1e-6)
        assert part["distinct_top_images"] == len(set(chosen.argmax(axis=0).tolist()))
    assert set(result["sum_sq"]) == {"se", "srm"} and result["comparisons"]["with_diagonal"][0]["n_pairs"] == 2
    check_png(server, weights, "correlation")
    check_png(server, weights, "top_images")
    assert server.http.get(f"/v1/analyses/{weights['id']}/plots/nothing.png").status_code == 404

    runs = MlflowClient(server.tracking_uri)
    job_run = server.http.get(f"/v1/jobs/{job_id}").json()["mlflow_run_id"]
    metrics = runs.get_run(job_run).data.metrics
    assert "analysis.pruning.srm.conv2.auc_gate_mean" in metrics
    assert "analysis.channel_weights.se.sum_sq_with_diagonal_mean" in metrics
    artifacts = {a.path for a in runs.list_artifacts(job_run, f"analyses/{pruning['id']}")}
    assert artifacts == {f"analyses/{pruning['id']}/pruning.png"}

    # a trial whose weights are gone fails its own part, saying so; the other parts still run
    lost = min(trials)
    with sessions() as session:
        session.execute(update(Trial).where(Trial.id == lost).values(weights_uri=(server.home / "gone.pt").as_uri()))
        session.commit()
    env = {**server.env, "COLUMNS": "200"}
    cli = subprocess.run([SRM_BENCH, "analyze", job_id, "--kind", "pruning", "--ratio", "0", "--ratio", "1",
                          "--watch", "--url", server.url], env=env, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert "AUC learned" in cli.stdout and "1 of 4 trials failed" in cli.stdout, cli.stdout
    latest = server.http.get(f"/v1/jobs/{job_id}/analyses").json()[-1]
    assert latest["status"] == "succeeded" and latest["progress"] == {"succeeded": 3, "failed": 1}
    failed = latest["result"]["failed_trials"]
    assert [f["trial_id"] for f in failed] == [lost] and "cannot be read" in failed[0]["error"]
    shown = subprocess.run([SRM_BENCH, "analysis", weights["id"], "--url", server.url], env=env,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "distinct top images" in shown.stdout, shown.stderr


def wait_analysis_list(server, job_id: str) -> list[dict]:
    return server.poll(f"/v1/jobs/{job_id}/analyses", lambda listed: len(listed) == 2, timeout=60)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_kill_the_server_mid_analysis_and_restart(server):
    """Parts written before the crash are kept; the rest run once more; every part ends exactly once."""
    job_id = server.http.post("/v1/jobs", json=tiny_job(seeds=[5])).json()["id"]
    assert server.wait_finished(job_id, timeout=900)["status"] == "succeeded", server.log_tail()
    ratios = [round(0.05 * i, 2) for i in range(21)]
    created = server.http.post(f"/v1/jobs/{job_id}/analyses", json={"kind": "pruning", "ratios": ratios})
    assert created.status_code == 202
    analysis_id = created.json()["id"]
    wait_analysis(server, analysis_id, lambda d: 1 <= d["progress"].get("succeeded", 0) < 4)
    server.kill()
    sessions = session_factory(server.env["SRM_BENCH_DATABASE_URL"])
    with sessions() as session:
        before = {p.trial_id: (p.status, p.finished_at, p.result) for p in session.scalars(
            select(AnalysisTrial).where(AnalysisTrial.analysis_id == analysis_id))}
    done_before = {k for k, v in before.items() if v[0] == "succeeded"}
    assert done_before and len(done_before) < 4

    server.start()
    after = wait_analysis(server, analysis_id, finished, timeout=400)
    assert after["status"] == "succeeded" and after["progress"] == {"succeeded": 4}, server.log_tail()
    with sessions() as session:
        parts = list(session.scalars(select(AnalysisTrial).where(AnalysisTrial.analysis_id == analysis_id)))
    assert len(parts) == len({p.trial_id for p in parts}) == 4
    for part in parts:
        if part.trial_id in done_before:  # not run again
            assert (part.finished_at, part.result) == before[part.trial_id][1:]
    assert len(after["result"]["trials"]) == 4 and after["plots"] == ["pruning"]
    shutil.rmtree(server.home / "ray_results", ignore_errors=True)
