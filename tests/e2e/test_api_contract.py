"""The API against its own OpenAPI document: schemathesis fuzzes every route of the live app
(uvicorn, `srm-bench serve --no-dispatcher`) for a bounded time with every check, on SQLite and
on PostgreSQL. No answer may be a server error, a status, content type, header or body the
document does not declare, or a 405 without the path's methods in Allow.

Two kinds of finding are reported, not failed on: "schema-valid request rejected" (ST202), where
a value the schema allows names something that does not exist here (a dataset, a protocol, an
override key; the schema lists what it can: kinds, backbones, presets), and "deleted resource
still available" (ST301): DELETE /v1/jobs/{id} cancels a job, which stays readable by design.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from service import db, planning
from service.results import write_summaries
from service.schemas import JobRequest
from tests.e2e.conftest import SRM_BENCH, free_port
from tests.service.factories import finished_job

pytest.importorskip("schemathesis")
ST = str(Path(sys.executable).parent / "st")
TOKEN = "contract-token"
FUZZ_SECONDS = int(os.environ.get("SRM_BENCH_CONTRACT_SECONDS", "60"))
REPORTED_ONLY = ("Schema-valid request rejected", "Deleted resource still available")


def _seed(url: str) -> None:
    """A finished job (with a real job's spec) and its summaries, so the leaderboard has a board."""
    db.upgrade(url)
    planned = planning.plan(JobRequest(dataset="textures", backbone="cifar_resnet20", variants=["baseline", "srm"],
                                       folds=3))
    with db.session_factory(url)() as session:
        job = finished_job(session, {"baseline": [70.0, 71.0, 72.0], "srm": [72.0, 73.5, 73.0]},
                           spec=planned.spec.model_dump(mode="json"))
        write_summaries(session, job)
        session.commit()


@pytest.fixture()
def live_api(tmp_path, database_url):
    _seed(database_url)
    home, port = tmp_path / "home", free_port()
    home.mkdir()
    env = {**os.environ, "SRM_BENCH_HOME": str(home), "SRM_BENCH_DATABASE_URL": database_url,
           "SRM_BENCH_API_TOKEN": TOKEN}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = open(home / "serve.log", "w")
    process = subprocess.Popen([SRM_BENCH, "serve", "--no-dispatcher", "--port", str(port), "--log-level", "warning"],
                               env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code in (200, 503):
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        process.kill()
        raise RuntimeError((home / "serve.log").read_text()[-3000:])
    yield url, home
    process.terminate()
    process.wait(timeout=30)


def _failures(junit: Path) -> list[tuple[str, str, str]]:
    """(operation, check title, the test case's text) for every failed check of the JUnit report."""
    found = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        for failure in [*case.iter("failure"), *case.iter("error")]:
            text = (failure.get("message") or "") + (failure.text or "")
            titles = re.findall(r"^- (ST\d+ .+)$", text, flags=re.MULTILINE) or ["(no check named)"]
            found += [(case.get("name", "?"), title, text) for title in titles]
    return found


def test_every_answer_is_in_the_openapi_document(live_api, tmp_path):
    url, home = live_api
    junit = tmp_path / "schemathesis.xml"
    run = subprocess.run([ST, "run", f"{url}/openapi.json", "--checks", "all", "--max-time", str(FUZZ_SECONDS),
                          "--header", f"Authorization: Bearer {TOKEN}", "--seed", "14", "--report", "junit",
                          "--report-junit-path", str(junit), "--no-color"],
                         capture_output=True, text=True, timeout=FUZZ_SECONDS + 240, cwd=tmp_path)  # its cache
    summary = run.stdout[-4000:]
    print(summary)  # the schemathesis summary: operations, phases, test cases, failures
    document = httpx.get(f"{url}/openapi.json").json()
    operations = sum(len(methods) for methods in document["paths"].values())
    assert operations >= 26, operations  # jobs, studies, analyses, reports, plots, catalog, health
    assert f"{operations} selected" in run.stdout or f"Selected: {operations}" in run.stdout, summary  # none skipped
    failures = _failures(junit)
    failed = [f for f in failures if not any(kind in f[1] for kind in REPORTED_ONLY)]
    assert not failed, "\n\n".join(f"{op}: {title}\n{text[:1500]}" for op, title, text in failed) + "\n" + summary
    assert "Traceback" not in (home / "serve.log").read_text()  # no unhandled error on the server either
