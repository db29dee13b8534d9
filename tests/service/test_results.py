"""Aggregated results, their tables and the leaderboard, from trial rows in SQL."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from service.results import job_results, leaderboard, write_summaries
from tests.service.factories import finished_job

BASELINE = [0.60, 0.62, 0.61, 0.63, 0.59]
SRM = [0.66, 0.65, 0.67, 0.69, 0.64]
SE = [0.61, 0.64, 0.60, 0.65, 0.60]


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
    assert srm["group_top1"] == {"Ar": pytest.approx(np.mean(SRM)), "Cl": pytest.approx(np.mean(SRM) + 0.01)}
    assert srm["params"] == 1003 and srm["macs"] == 5000 and srm["images_per_s"] == pytest.approx(102.0)
    assert srm["gain"]["gain_mean"] == pytest.approx(np.mean(SRM) - np.mean(BASELINE))
    assert srm["gain"]["wilcoxon_pvalue"] == pytest.approx(0.0625)
    assert srm["gain"]["t_pvalue"] < 0.01
    assert rows["baseline"]["gain"] is None
    assert "0.0625" in results["test_note"]
    assert len(results["folds"]) == 15


def test_markdown_is_a_paper_style_table_in_percent(sessions, job):
    from service.results import to_markdown

    with sessions() as session:
        text = to_markdown(job_results(session, job))
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| variant"))
    assert "Ar top-1" in header and "Wilcoxon p" in header
    srm_line = next(line for line in lines if line.startswith("| srm"))
    assert f"{np.mean(SRM) * 100:.2f} ± {np.std(SRM, ddof=1) * 100:.2f}" in srm_line
    assert f"{(np.mean(SRM) - np.mean(BASELINE)) * 100:+.2f}" in srm_line
    assert "0.0625" in srm_line


def test_csv_has_raw_numbers(sessions, job):
    from service.results import to_csv

    with sessions() as session:
        rows = list(csv.DictReader(io.StringIO(to_csv(job_results(session, job)))))
    assert [r["variant"] for r in rows] == ["baseline", "se", "srm"]
    assert float(rows[2]["top1_mean"]) == pytest.approx(np.mean(SRM))
    assert float(rows[2]["wilcoxon_pvalue"]) == pytest.approx(0.0625)
    assert rows[0]["gain_top1"] == "" and "top1_Ar" in rows[0]


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
    second_srm = [0.70, 0.71, 0.72]
    with sessions() as session:
        jobs = [finished_job(session, {"baseline": BASELINE, "srm": SRM}),
                finished_job(session, {"baseline": BASELINE[:3], "srm": second_srm}),
                finished_job(session, {"baseline": [0.9, 0.9]}, protocol_hash="other" * 8)]
        finished_job(session, {"srm": [0.99, 0.99]}, status="running")  # no summary until it ends
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
