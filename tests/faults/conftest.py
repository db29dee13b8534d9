"""Parts the service depends on, run for real so that tests can take them away: a PostgreSQL of
the test's own (initdb + pg_ctl as the `postgres` OS user) and an `mlflow server` process."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def pytest_collection_modifyitems(items):
    for item in items:  # every test here takes a dependency away; `-m faults` picks them out
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.slow)


class OwnPostgres:
    """A PostgreSQL cluster in a temp dir on a free port, that a test may stop and start again."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None:
            pytest.skip(f"needs {PG_BIN}/initdb and runuser")
        self.folder = Path(tempfile.mkdtemp(prefix="srm-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        shutil.chown(self.folder, "postgres", "postgres")
        self._as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                           "--no-sync"])

    def _as_postgres(self, command: list[str]) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, f"{command[0]} failed: {done.stdout}{done.stderr}"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder} " \
                  "-c fsync=off"
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "pg.log"),
                           "-o", options, "-w", "-t", "60", "start"])

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as when the database host goes away."""
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def remove(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.data),
                        "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


TINY_JOB = {"dataset": "textures[n_per_class=24,image_size=16]", "backbone": "cifar_resnet20",
            "variants": ["baseline", "srm"], "folds": 2, "protocol": "quick",
            "overrides": {"epochs": 3, "image_size": 16}}


def start_tiny_job(server) -> str:
    """Submit a 4-trial job and wait until one of its trials trains: when a fault test takes a part away."""
    job_id = server.http.post("/v1/jobs", json=TINY_JOB).json()["id"]
    server.wait_for(job_id, lambda d: d["progress"]["counts"].get("running", 0) >= 1, poll=0.2)
    return job_id


@pytest.fixture()
def own_postgres():
    server = OwnPostgres()
    server.start()
    yield server
    server.remove()


class MlflowServer:
    """`mlflow server` on a free port with a SQLite backend in a temp dir; `kill` is a crash (-9)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 120) -> None:
        self.starts += 1
        log = open(self.folder / f"mlflow-{self.starts}.log", "w")
        mlflow = str(Path(sys.executable).parent / "mlflow")
        self.process = subprocess.Popen(
            [mlflow, "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
             "--artifacts-destination", str(self.folder / "artifacts")],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.folder, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.folder / f"mlflow-{self.starts}.log").read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"mlflow server did not answer in {timeout}s")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


@pytest.fixture()
def mlflow_server(tmp_path):
    folder = tmp_path / "mlflow-server"
    folder.mkdir()
    server = MlflowServer(folder)
    server.start()
    yield server
    server.kill()
