"""In a real browser (Debian's chromium through Playwright): the MLflow leaderboard link and a job's report.

A finished job's store is served by the `mlflow ui` command that `srm-bench leaderboard --mlflow-url`
tells the user to run; the link it prints must open the leaderboard with the summary runs' names
and top1_mean values on the page. The job's report must open from a file with every image decoded.
Screenshots are saved under the test's tmp dir.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from tests.e2e.conftest import SRM_BENCH, free_port
from tests.e2e.test_serve import TINY, tiny_job

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"  # Debian's package (scripts/test.sh installs it); nothing is downloaded


def _cli(server, *args: str, ui_url: str | None = None) -> subprocess.CompletedProcess:
    environment = {**server.env, "COLUMNS": "250"}
    environment.pop("SRM_BENCH_MLFLOW_UI_URL", None)
    if ui_url:
        environment["SRM_BENCH_MLFLOW_UI_URL"] = ui_url
    done = subprocess.run([SRM_BENCH, *args, "--url", server.url], env=environment, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def _start_mlflow_ui(command: str, port: int, log: Path) -> subprocess.Popen:
    """The printed `mlflow ui` command, on a free port with one worker; waits until it answers."""
    argv = shlex.split(command)
    argv[0] = str(Path(sys.executable).parent / argv[0])
    process = subprocess.Popen([*argv, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                               stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"mlflow ui did not answer in 180 s: {log.read_text()[-3000:]}")


@pytest.fixture()
def browser():
    assert Path(CHROMIUM).is_file(), "Debian's chromium is missing: apt-get install chromium (scripts/test.sh does)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_leaderboard_in_mlflow_ui_and_report_in_a_browser(server, browser, tmp_path):
    job_id = server.http.post("/v1/jobs", json=tiny_job(variants=["baseline", "se", "srm"])).json()["id"]
    assert server.wait_finished(job_id, timeout=400)["status"] == "succeeded", server.log_tail()
    shots = tmp_path / "screenshots"
    shots.mkdir()

    # No MLflow UI configured: the command says how to start one, and the link for its default address.
    advice = _cli(server, "leaderboard", "--dataset", TINY, "--mlflow-url").stdout
    start = re.search(r"^\s*(mlflow ui --backend-store-uri \S+)\s*$", advice, re.MULTILINE)
    assert start and start.group(1) == f"mlflow ui --backend-store-uri {server.tracking_uri}", advice
    assert "http://127.0.0.1:5000/#/experiments/" in advice

    port = free_port()
    ui = _start_mlflow_ui(start.group(1), port, tmp_path / "mlflow-ui.log")
    try:
        printed = _cli(server, "leaderboard", "--dataset", TINY, "--mlflow-url",
                       ui_url=f"http://127.0.0.1:{port}").stdout
        assert "srm" in printed and "top-1 (%)" in printed
        link = re.search(r"http://127\.0\.0\.1:\d+/#/experiments/\S+", printed).group(0)

        mlflow = MlflowClient(server.tracking_uri)
        board = mlflow.get_experiment_by_name("srm-bench-leaderboard")
        summaries = mlflow.search_runs([board.experiment_id], filter_string=f"tags.job_id = '{job_id}'",
                                       order_by=["metrics.top1_mean DESC"])
        assert len(summaries) == 3

        page = browser.new_page(viewport={"width": 2560, "height": 700})  # wide: every column shows
        page.goto(link)
        page.wait_for_function("name => document.body.innerText.includes(name)", arg=summaries[-1].info.run_name,
                               timeout=90_000)
        page.wait_for_timeout(1500)  # let the table settle before the picture
        page.screenshot(path=str(shots / "leaderboard.png"), full_page=True)
        text = page.inner_text("body")
        for run in summaries:
            assert run.info.run_name in text
            assert _shown(run.data.metrics["top1_mean"]) in text, (run.data.metrics["top1_mean"], text[:3000])
        # The runs table is sorted by top1_mean, best first (ties in either order).
        shown_at = {run.info.run_name: text.index(run.info.run_name) for run in summaries}
        for better in summaries:
            for worse in summaries:
                if better.data.metrics["top1_mean"] > worse.data.metrics["top1_mean"]:
                    assert shown_at[better.info.run_name] < shown_at[worse.info.run_name], text[:3000]
    finally:
        os.killpg(ui.pid, 9)
        ui.wait(timeout=30)

    report = tmp_path / "report.html"
    _cli(server, "report", job_id, "-o", str(report))
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
    assert len(images) == 3 and all(complete and width > 0 for _, complete, width in images), images
    page.screenshot(path=str(shots / "report.png"), full_page=True)


def _shown(value: float) -> str:
    """A metric as MLflow's runs table prints it: JavaScript's shortest round-trip form."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
