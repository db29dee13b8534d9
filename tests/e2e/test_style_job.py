"""A style-transfer job end to end: REST -> SQL -> dispatcher -> Ray Tune -> MLflow -> results and plots."""
from __future__ import annotations

import io

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image
from scipy import stats

pytestmark = pytest.mark.slow

VARIANTS = ["bn", "in", "bn+se", "bn+srm"]
CURVE_POINTS = 3


def tiny_style_job(**change) -> dict:
    """4 variants x 2 seeds, 12 Adam steps on 16x16 generated images with the random loss net."""
    return {"task": "style_transfer", "dataset": "stylized_shapes[n_per_class=4,image_size=16]",
            "style_image": "generated:waves", "perceptual_net": "random", "variants": VARIANTS, "seeds": [0, 1],
            "protocol": "style_quick", "overrides": {"image_size": 16, "steps": 12, "report_every": 4}} | change


def png(answer) -> Image.Image:
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png", answer.text
    assert answer.content[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(answer.content))
    image.verify()
    return Image.open(io.BytesIO(answer.content))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite runs the e2e tests of jobs
def test_style_job_runs_through_rest_ray_and_mlflow(server, tmp_path):
    created = server.http.post("/v1/jobs", json=tiny_style_job())
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    detail = server.wait_finished(job_id, timeout=600)
    assert detail["status"] == "succeeded", server.log_tail()
    assert detail["progress"]["counts"] == {"succeeded": 8}
    assert all(t["progress"] == 1.0 and t["epoch"] == CURVE_POINTS and t["mlflow_run_id"] for t in detail["trials"])

    results = server.http.get(f"/v1/jobs/{job_id}/results").json()
    assert results["task"] == "style_transfer" and results["perceptual_net"] == "random"
    rows = {r["variant"]: r for r in results["rows"]}
    assert list(rows) == VARIANTS
    finals = {(t["variant"], t["seed"]): t for t in results["trials"]}
    assert all(len(t["curve"]) == CURVE_POINTS for t in finals.values())
    for variant, row in rows.items():
        style = [finals[(variant, s)]["style_loss_final"] for s in (0, 1)]
        assert row["style_loss_final_mean"] == pytest.approx(np.mean(style))
        assert row["style_loss_final_std"] == pytest.approx(np.std(style, ddof=1))
        total = [finals[(variant, s)]["total_loss_final"] for s in (0, 1)]
        assert row["total_loss_final_mean"] == pytest.approx(np.mean(total))
        if variant == "bn":
            assert row["vs_bn"] is None
            continue
        bn_style = [finals[("bn", s)]["style_loss_final"] for s in (0, 1)]
        compared = row["vs_bn"]["style_loss"]
        assert compared["n_pairs"] == 2 and compared["min_wilcoxon_pvalue"] == 0.5
        assert compared["diff_mean"] == pytest.approx(np.mean(np.subtract(style, bn_style)))
        assert compared["t_pvalue"] == pytest.approx(stats.ttest_rel(style, bn_style).pvalue)
    assert "| bn+srm |" in server.http.get(f"/v1/jobs/{job_id}/results", params={"format": "markdown"}).text
    assert server.http.get(f"/v1/jobs/{job_id}/results", params={"format": "csv"}).text.startswith("variant,")

    mlflow = MlflowClient(server.tracking_uri)
    trial_run = mlflow.get_run(detail["trials"][0]["mlflow_run_id"])
    assert trial_run.data.params["perceptual_net"] == "random (seed 0)" and trial_run.data.tags["task"] == \
        "style_transfer"
    for metric in ("style_loss", "content_loss"):
        history = mlflow.get_metric_history(trial_run.info.run_id, metric)
        assert [m.step for m in history] == [1, 2, 3]
    artifacts = {a.path for a in mlflow.list_artifacts(trial_run.info.run_id)}
    assert {"loss_curves.png", "stylized.png"} <= artifacts
    experiment = mlflow.get_experiment_by_name("srm-bench")
    summaries = mlflow.search_runs([experiment.experiment_id], filter_string=f"tags.job_id = '{job_id}' and "
                                   "tags.`srm_bench.kind` = 'variant_summary'")
    by_variant = {r.data.tags["variant"]: r.data.metrics for r in summaries}
    assert set(by_variant) == set(VARIANTS)
    assert by_variant["bn+srm"]["style_loss_final_mean"] == pytest.approx(rows["bn+srm"]["style_loss_final_mean"])
    assert by_variant["in"]["diff_style_loss"] == pytest.approx(rows["in"]["vs_bn"]["style_loss"]["diff_mean"])

    job_artifacts = {a.path for a in mlflow.list_artifacts(detail["mlflow_run_id"], "plots")}
    assert job_artifacts == {"plots/curves.png", "plots/stylized.png"}
    report = server.http.get(f"/v1/jobs/{job_id}/report")
    assert report.status_code == 200 and "Stylized held-out images" in report.text and "bn+srm" in report.text

    grid = png(server.http.get(f"/v1/jobs/{job_id}/plots/stylized.png"))
    curves = png(server.http.get(f"/v1/jobs/{job_id}/plots/curves.png"))
    assert grid.height > grid.width / 4 and curves.width > 500
    grid.save(tmp_path / "stylized.png")  # looked at by hand; see the report in docs/style-transfer.md
    assert server.http.get(f"/v1/jobs/{job_id}/plots/nothing.png").status_code == 404

    boards = server.http.get("/v1/leaderboard", params={"task": "style_transfer"}).json()
    (board,) = boards
    totals = [r["total_loss_mean"] for r in board["rows"]]
    assert totals == sorted(totals) and [r["rank"] for r in board["rows"]] == [1, 2, 3, 4]
    assert {r["variant"] for r in board["rows"]} == set(VARIANTS)
    assert all(b["backbone"] != "transformer_net" for b in server.http.get("/v1/leaderboard").json())

    again = server.http.post("/v1/jobs", json=tiny_style_job(name="the same trials again")).json()["id"]
    repeated = server.wait_finished(again, timeout=120)
    assert repeated["status"] == "succeeded" and all(t["reused"] for t in repeated["trials"])
    assert server.http.get(f"/v1/jobs/{again}/results").json()["rows"] == results["rows"]
