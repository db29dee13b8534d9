"""End-to-end harness: the real `srm-bench serve` (uvicorn + dispatcher) in a subprocess.

It talks to the session's local Ray (RAY_ADDRESS), a local MLflow store under its own home,
and SQLite or a fresh PostgreSQL database.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.databases import empty_database

SRM_BENCH = str(Path(sys.executable).parent / "srm-bench")
TOKEN = "e2e-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One serving process; `kill` is the crash, `start` again is the restart on the same database."""

    def __init__(self, home: Path, database_url: str, ray_address: str):
        self.home, self.port = home, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "SRM_BENCH_HOME": str(home), "SRM_BENCH_DATABASE_URL": database_url,
                    "RAY_ADDRESS": ray_address, "SRM_BENCH_API_TOKEN": TOKEN, "SRM_BENCH_LEASE_S": "3",
                    "SRM_BENCH_POLL_S": "0.5",
                    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}
        # MLflow's default store under the home (workers put its artifacts there too, not in ./mlruns).
        self.env.pop("MLFLOW_TRACKING_URI", None)
        self.env.pop("SRM_BENCH_DATA_DIR", None)
        self.tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.http = httpx.Client(base_url=self.url, timeout=60,
                                 headers={"Authorization": f"Bearer {TOKEN}"})

    def start(self, timeout: float = 90) -> None:
        self.starts += 1
        log = open(self.home / f"serve-{self.starts}.log", "w")
        self.process = subprocess.Popen([SRM_BENCH, "serve", "--port", str(self.port), "--log-level", "info"],
                                        env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.home, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"srm-bench serve exited: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=5).status_code in (200, 503):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"srm-bench serve did not answer in {timeout}s: {self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown hooks run, like a crash or an OOM kill."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, chars: int = 3000) -> str:
        logs = sorted(self.home.glob("serve-*.log"))
        return logs[-1].read_text()[-chars:] if logs else ""

    def wait_for(self, job_id: str, predicate, timeout: float = 240, poll: float = 0.5) -> dict:
        return self.poll(f"/v1/jobs/{job_id}", predicate, timeout, poll)

    def poll(self, path: str, predicate, timeout: float = 240, poll: float = 0.5) -> dict:
        """GET ``path`` until ``predicate`` holds for its JSON; fails with the server's log tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            detail = self.http.get(path).json()
            if predicate(detail):
                return detail
            if self.process.poll() is not None:
                raise RuntimeError(f"srm-bench serve died: {self.log_tail()}")
            time.sleep(poll)
        shown = detail.get("progress") if isinstance(detail, dict) else detail
        raise AssertionError(f"{path} did not get there in {timeout}s: {shown}\n"
                             f"{self.log_tail()}")

    def wait_finished(self, job_id: str, timeout: float = 240) -> dict:
        return self.wait_for(job_id, lambda d: d["status"] in ("succeeded", "failed", "cancelled"), timeout)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    with empty_database(request.param, tmp_path, "srm_bench_e2e") as url:
        yield url


@pytest.fixture()
def server(tmp_path, database_url, ray_address):
    home = tmp_path / "home"
    home.mkdir()
    serving = Server(home, database_url, ray_address)
    serving.start()
    yield serving
    serving.kill()
