"""Aggregated results, their tables and the leaderboard, from trial rows in SQL."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from scipy import stats

from service.results import job_results, leaderboard, write_summaries
from tests.service.factories import finished_job

BASELINE = [60.0, 62.0, 61.0, 63.0, 59.0]  # top-1 in percent, as trials report it
SRM = [66.0, 65.0, 67.0, 69.0, 64.0]
SE = [61.0, 64.0, 60.0, 65.0, 60.0]


@pytest.fixture()
def job(sessions):
    with sessions() as session:
        return finished_job(session, {"baseline": BASELINE, "se": SE, "srm": SRM}, groups=["Ar", "Cl"])


def test_rows_per_variant_with_fold_statistics_and_paired_gain(sessions, job):
    with sessions() as session:
        results = job_results(session, job)
    rows = {r["variant"]: r for r in results["rows"]}
    assert list(rows) == ["baseline", "se", "srm"]
    srm = rows["srm"]
    assert srm["n_folds"] == 5
    assert srm["top1_mean"] == pytest.approx(np.mean(SRM))
    assert srm["top1_std"] == pytest.approx(np.std(SRM, ddof=1))
    assert srm["top1_ci95"][0] < srm["top1_mean"] < srm["top1_ci95"][1]
    assert srm["group_top1"] == {"Ar": pytest.approx(np.mean(SRM)), "Cl": pytest.approx(np.mean(SRM) + 1.0)}
    assert srm["params"] == 1003 and srm["macs"] == 5000 and srm["images_per_s"] == pytest.approx(102.0)
    assert srm["gain"]["gain_mean"] == pytest.approx(np.mean(SRM) - np.mean(BASELINE))
    assert srm["gain"]["wilcoxon_pvalue"] == pytest.approx(0.0625)
    assert srm["gain"]["t_pvalue"] < 0.01
    assert rows["baseline"]["gain"] is None
    assert "0.0625" in results["test_note"]
    assert len(results["folds"]) == 15
    assert {"repeat", "num_train", "num_eval"} <= set(results["folds"][0])
    assert results["folds"][0]["num_train"] == 400 and results["folds"][0]["num_eval"] == 100
    assert srm["n_trials"] == 5 and srm["gain"]["n_pairs"] == 5 and not srm["incomplete"]


def test_gain_carries_the_corrected_and_bayesian_tests_computed_independently(sessions, job):
    """Nadeau-Bengio by hand (numpy + scipy's t), the Bayesian test by baycomp itself."""
    import baycomp
    from scipy import stats

    with sessions() as session:
        gain = next(r for r in job_results(session, job)["rows"] if r["variant"] == "se")["gain"]
    diff = np.subtract(SE, BASELINE)
    se = np.std(diff, ddof=1) * np.sqrt(1 / 5 + 100 / 400)
    t = diff.mean() / se
    assert gain["corrected_t_statistic"] == pytest.approx(t)
    assert gain["corrected_t_pvalue"] == pytest.approx(2 * stats.t.sf(abs(t), 4))
    half = stats.t.ppf(0.975, 4) * se
    assert gain["corrected_ci95"] == pytest.approx([diff.mean() - half, diff.mean() + half])
    # 5 folds: baycomp's 1/(k-1) equals the trials' 100/400
    p_worse, p_equivalent, p_better = baycomp.two_on_single(np.array(BASELINE), np.array(SE), rope=0.5)
    assert gain["bayes"] == pytest.approx({"p_better": p_better, "p_equivalent": p_equivalent,
                                           "p_worse": p_worse, "rope": 0.5})
    assert gain["verdict"] == "undecided" and gain["verdict_note"].startswith("undecided: 5 folds detect")
    assert gain["t_pvalue"] is not None and "secondary" in gain["secondary_note"]


def test_rope_comes_from_the_request_else_the_job(sessions, client):
    with sessions() as session:
        job = finished_job(session, {"baseline": BASELINE, "srm": SRM}, spec={"rope": 2.0})
    assert client.get(f"/v1/jobs/{job.id}/results").json()["rows"][1]["gain"]["bayes"]["rope"] == 2.0
    body = client.get(f"/v1/jobs/{job.id}/results", params={"rope": 0}).json()
    assert body["rope"] == 0 and body["rows"][1]["gain"]["bayes"]["p_equivalent"] == 0
    bad = client.get(f"/v1/jobs/{job.id}/results", params={"rope": -1})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "rope"]


def test_pairs_never_cross_repeats_and_failed_trials_are_listed(sessions):
    """2 repeats x 3 folds; the variant is baseline + 1 on repeat 0 and baseline + 3 on repeat 1, and the
    variant's repeat-1 fold-2 trial failed. Pairing across repeats would mix these offsets."""
    base = [50.0, 52.0, 51.0, 70.0, 71.0, 72.0]
    variant = [51.0, 53.0, 52.0, 73.0, 74.0, None]
    with sessions() as session:
        job = finished_job(session, {"baseline": base, "srm": variant}, folds=3)
        results = job_results(session, job)
    srm = results["rows"][1]
    assert srm["incomplete"] is True and srm["missing"] == [{"repeat": 1, "fold": 2, "seed": 0}]
    assert srm["n_trials"] == 6 and srm["n_succeeded"] == 5 and srm["n_folds"] == 5
    assert srm["gain"]["n_pairs"] == 5
    assert srm["gain"]["gain_mean"] == pytest.approx(np.mean([1, 1, 1, 3, 3]))
    assert results["rows"][0]["incomplete"] is False and results["n_folds"] == 6
    assert [(f["repeat"], f["fold"]) for f in results["folds"] if f["variant"] == "srm"] == [
        (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    with sessions() as session:
        alone = job_results(session, finished_job(session, {"srm": [60.0, None, 61.0]}))["rows"][0]
    assert alone["incomplete"] and alone["missing"] == [{"repeat": 0, "fold": 1, "seed": 0}] and alone["gain"] is None


def test_a_near_chance_run_in_percent_is_not_scaled(sessions):
    from service.results import to_markdown

    with sessions() as session:
        text = to_markdown(job_results(session, finished_job(session, {"baseline": [0.3, 0.2, 0.4]})))
    assert "| 0.30 ± 0.10 |" in text and "30.00" not in text


def test_markdown_is_a_paper_style_table_in_percent(sessions, job):
    from service.results import to_markdown

    with sessions() as session:
        text = to_markdown(job_results(session, job))
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| variant"))
    assert "Ar top-1" in header and "Wilcoxon p (secondary)" in header and "corrected p" in header
    srm_line = next(line for line in lines if line.startswith("| srm"))
    assert f"{np.mean(SRM):.2f} ± {np.std(SRM, ddof=1):.2f}" in srm_line
    assert f"{np.mean(SRM) - np.mean(BASELINE):+.2f} [" in srm_line
    assert "0.0625" in srm_line and "| better |" in srm_line
    assert any(line.startswith("srm vs baseline, +5.20 points over 5 pairs: better: P(better)") for line in lines)


def test_csv_has_raw_numbers(sessions, job):
    from service.results import to_csv

    with sessions() as session:
        rows = list(csv.DictReader(io.StringIO(to_csv(job_results(session, job)))))
    assert [r["variant"] for r in rows] == ["baseline", "se", "srm"]
    assert float(rows[2]["top1_mean"]) == pytest.approx(np.mean(SRM))
    assert float(rows[2]["wilcoxon_pvalue"]) == pytest.approx(0.0625)
    assert rows[0]["gain_top1"] == "" and "top1_Ar" in rows[0]
    assert rows[2]["verdict"] == "better" and float(rows[2]["p_better"]) >= 0.95
    assert float(rows[2]["gain_ci_low"]) < float(rows[2]["gain_top1"]) < float(rows[2]["gain_ci_high"])


def test_results_endpoint_formats(client, sessions):
    with sessions() as session:
        job = finished_job(session, {"baseline": BASELINE, "srm": SRM})
    assert client.get(f"/v1/jobs/{job.id}/results").json()["rows"][1]["variant"] == "srm"
    csv_response = client.get(f"/v1/jobs/{job.id}/results", params={"format": "csv"})
    assert csv_response.headers["content-type"].startswith("text/csv")
    assert csv_response.text.startswith("variant,n_folds")
    markdown = client.get(f"/v1/jobs/{job.id}/results", params={"format": "markdown"})
    assert markdown.headers["content-type"].startswith("text/markdown") and "| srm |" in markdown.text


def test_leaderboard_pools_all_trials_of_jobs_with_the_same_protocol_hash(client, sessions):
    second_srm = [70.0, 71.0, 72.0]
    with sessions() as session:
        jobs = [finished_job(session, {"baseline": BASELINE, "srm": SRM}),
                finished_job(session, {"baseline": BASELINE[:3], "srm": second_srm}),
                finished_job(session, {"baseline": [90.0, 90.0]}, protocol_hash="other" * 8)]
        finished_job(session, {"srm": [99.0, 99.0]}, status="running")  # no summary until it ends
        for job in jobs:
            write_summaries(session, job)
        session.commit()
        boards = leaderboard(session, dataset="textures")
    assert len(boards) == 2
    board = next(b for b in boards if b["protocol_hash"] == "p" * 64)
    assert [r["variant"] for r in board["rows"]] == ["srm", "baseline"]  # best first
    srm = board["rows"][0]
    pooled = SRM + second_srm
    assert srm["n_jobs"] == 2 and srm["n_trials"] == 8
    assert srm["top1_mean"] == pytest.approx(np.mean(pooled))
    assert srm["top1_std"] == pytest.approx(np.std(pooled, ddof=1))
    over_http = client.get("/v1/leaderboard", params={"dataset": "textures", "backbone": "cifar_resnet20",
                                                       "protocol": "quick"}).json()
    http_board = next(b for b in over_http if b["protocol_hash"] == "p" * 64)
    assert http_board["rows"][0]["top1_mean"] == pytest.approx(np.mean(pooled))
    assert http_board["n_jobs"] == 2
    assert client.get("/v1/leaderboard", params={"dataset": "nothing"}).json() == []


def test_results_of_an_unknown_job_is_a_clear_404(client):
    response = client.get("/v1/jobs/nope/results")
    assert response.status_code == 404 and "nope" in response.text


def test_results_rows_match_between_job_object_and_id_paths(sessions, job):
    from service.results import job_results_by_id

    with sessions() as session:
        assert job_results_by_id(session, job.id) == job_results(session, job)


def test_worker_listener_is_tcp_so_asyncio_disables_nagle():
    """uvicorn's own --workers listener has proto 0, which leaves Nagle on (40 ms per keep-alive reply)."""
    import socket

    from service.cli import _tcp_listener

    with _tcp_listener("127.0.0.1", 0) as listener:
        assert listener.proto == socket.IPPROTO_TCP
        assert listener.get_inheritable()


def test_serve_with_two_workers_answers_results_and_leaderboard(tmp_path):
    """The real `srm-bench serve --workers 2` (SQLite file): both routes answer over keep-alive."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    from service import db
    from service.cli import _tcp_listener

    url = f"sqlite:///{tmp_path / 'served.db'}"
    db.upgrade(url)
    with db.session_factory(url)() as session:
        served = finished_job(session, {"baseline": BASELINE, "srm": SRM})
        write_summaries(session, served)
        session.commit()
    with _tcp_listener("127.0.0.1", 0) as probe:
        port = probe.getsockname()[1]
    env = {**os.environ, "SRM_BENCH_DATABASE_URL": url, "SRM_BENCH_HOME": str(tmp_path)}
    env.pop("SRM_BENCH_API_TOKEN", None)
    server = subprocess.Popen([str(Path(sys.executable).parent / "srm-bench"), "serve", "--port", str(port),
                               "--workers", "2", "--no-dispatcher", "--log-level", "warning"], env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    http.get("/healthz")
                    break
                except httpx.TransportError:
                    assert server.poll() is None and time.monotonic() < deadline, "server did not start"
                    time.sleep(0.2)
            for _ in range(4):
                body = http.get(f"/v1/jobs/{served.id}/results").json()
                assert [r["variant"] for r in body["rows"]] == ["baseline", "srm"]
                assert body["rows"][1]["gain"]["wilcoxon_pvalue"] == pytest.approx(0.0625)
            board = http.get("/v1/leaderboard", params={"dataset": "textures"}).json()
            assert board[0]["rows"][0]["variant"] == "srm" and board[0]["n_jobs"] == 1
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0


def test_leaderboard_ranks_and_tie_groups_from_summary_pairs(client, sessions):
    with sessions() as session:
        job = finished_job(session, {"baseline": BASELINE, "se": SE, "srm": SRM})
        write_summaries(session, job)
        session.commit()
    board = client.get("/v1/leaderboard", params={"dataset": "textures"}).json()[0]
    rows = {r["variant"]: r for r in board["rows"]}
    assert [r["variant"] for r in board["rows"]] == ["srm", "se", "baseline"]
    assert [rows[v]["rank"] for v in ("srm", "se", "baseline")] == [1, 2, 3]
    # SE - SRM and baseline - SRM on the 5 shared folds, corrected test by hand (n_test/n_train = 1/4)
    for name, values in (("se", SE), ("baseline", BASELINE)):
        diff = np.subtract(values, SRM)
        t = diff.mean() / (diff.std(ddof=1) * np.sqrt(1 / 5 + 1 / 4))
        assert rows[name]["vs_best"]["corrected_t_pvalue"] == pytest.approx(2 * stats.t.sf(abs(t), 4))
    assert rows["srm"]["tie_group"] == 1 and rows["baseline"]["tie_group"] > 1
