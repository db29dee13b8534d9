"""An existing Ray cluster with token authentication (Ray's default since 2.60), reached via RAY_ADDRESS.

The cluster is real: a `ray start --head` process with its own token and one more node joined with
`ray start --address`, each with one CPU, so the job's trials must spread over both. The service gets
the token the way a user gives it (RAY_AUTH_TOKEN, no RAY_AUTH_MODE).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from service.db import session_factory
from service.models import Trial
from tests.e2e.conftest import SRM_BENCH, Server, free_port

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).parent / "ray")
TINY_JOB = {"dataset": "textures[n_per_class=8,image_size=16]", "backbone": "cifar_resnet20",
            "variants": ["baseline", "srm"], "folds": 2, "protocol": "quick",
            "overrides": {"iterations": 2, "image_size": 16}}
NODE_COUNT = f"""
import json, os
from ray._raylet import GcsClient
from workers import ray_cluster
ray_cluster.use_token_if_available()
nodes = GcsClient(address=os.environ["ADDR"]).get_all_node_info(timeout=5)
print(json.dumps([node_id.hex() for node_id, info in nodes.items() if info.state == 0]))
"""


def _without_ray_settings(env: dict) -> dict:
    """The environment minus the session Ray's address and auth mode (this test sets its own)."""
    return {k: v for k, v in env.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN",
                                                      "RAY_AUTH_TOKEN_PATH")}


class TokenCluster:
    """A two-node Ray cluster in processes of its own, with its own temp dir and auth token."""

    def __init__(self):
        self.token = secrets.token_hex(16)
        self.temp_dir = tempfile.mkdtemp(prefix="srmray")  # short: Ray's socket paths have a length limit
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = _without_ray_settings(os.environ) | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}
        self.processes: list[subprocess.Popen] = []

    def _start(self, *args: str) -> None:
        log = open(Path(self.temp_dir) / f"node-{len(self.processes)}.log", "w")
        self.processes.append(subprocess.Popen(
            [RAY, "start", "--block", "--num-cpus", "1", "--disable-usage-stats", *args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def alive_nodes(self) -> list[str]:
        env = self.env | {"ADDR": self.address}
        out = subprocess.run([sys.executable, "-c", NODE_COUNT], env=env, capture_output=True, text=True,
                             timeout=60)
        return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else []

    def start(self, timeout: float = 120) -> None:
        self._start("--head", "--port", str(self.port), "--temp-dir", self.temp_dir, "--include-dashboard", "false")
        self._wait_for_nodes(1, timeout)
        self._start("--address", self.address)
        self._wait_for_nodes(2, timeout)

    def _wait_for_nodes(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.alive_nodes()) >= count:
                return
            time.sleep(1)
        logs = "\n".join(p.read_text()[-1500:] for p in Path(self.temp_dir).glob("node-*.log"))
        raise RuntimeError(f"the Ray cluster did not reach {count} node(s) in {timeout}s:\n{logs}")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        # Ray's daemons (GCS, raylets, workers) carry the temp dir in their command lines.
        subprocess.run(["pkill", "-9", "-f", self.temp_dir], check=False)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def token_cluster():
    cluster = TokenCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _serve(tmp_path: Path, cluster: TokenCluster, token: str) -> Server:
    home = tmp_path / "home"
    home.mkdir()
    server = Server(home, f"sqlite:///{tmp_path / 'srm_bench.db'}", cluster.address)
    server.env = _without_ray_settings(server.env) | {"RAY_ADDRESS": cluster.address, "RAY_AUTH_TOKEN": token}
    return server


def test_a_job_runs_on_both_nodes_of_a_token_cluster(tmp_path, token_cluster):
    nodes = set(token_cluster.alive_nodes())
    assert len(nodes) == 2
    server = _serve(tmp_path, token_cluster, token_cluster.token)
    server.start()
    try:
        health = httpx.get(f"{server.url}/healthz", timeout=30).json()
        assert health["checks"]["ray"] == {"ok": True, "address": token_cluster.address}
        job_id = server.http.post("/v1/jobs", json=TINY_JOB).json()["id"]
        detail = server.wait_finished(job_id, timeout=300)
        assert detail["status"] == "succeeded", server.log_tail()
        with session_factory(server.env["SRM_BENCH_DATABASE_URL"])() as session:
            trials = session.query(Trial).filter(Trial.job_id == job_id).all()
        assert len(trials) == 4 and all(t.status == "succeeded" for t in trials)
        assert {t.metrics["ray_node_id"] for t in trials} == nodes  # every node of the cluster ran trials
    finally:
        server.kill()


def test_a_wrong_token_is_said_at_start_and_jobs_wait(tmp_path, token_cluster):
    server = _serve(tmp_path, token_cluster, "not-the-token")
    server.start()
    try:
        health = httpx.get(f"{server.url}/healthz", timeout=30)
        assert health.status_code == 503
        ray_check = health.json()["checks"]["ray"]
        assert ray_check["ok"] is False and "token" in ray_check["error"] and "RAY_AUTH_TOKEN" in ray_check["error"]
        assert "refused the connection" in server.log_tail()
        job_id = server.http.post("/v1/jobs", json=TINY_JOB).json()["id"]
        time.sleep(8)  # several dispatcher polls
        detail = server.http.get(f"/v1/jobs/{job_id}").json()
        assert detail["status"] == "queued"  # not failed trial by trial
        assert all(t["status"] == "queued" and not t.get("error") for t in detail["trials"])
    finally:
        server.kill()


def test_dispatch_without_a_token_exits_with_the_reason(tmp_path, token_cluster):
    home = tmp_path / "user-home"  # no ~/.ray/auth_token there
    home.mkdir()
    env = _without_ray_settings(os.environ) | {"RAY_ADDRESS": token_cluster.address, "HOME": str(home),
                                               "SRM_BENCH_HOME": str(tmp_path / "srm")}
    done = subprocess.run([SRM_BENCH, "dispatch"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    said = " ".join(done.stderr.split())  # rich wraps long lines
    assert "requires token authentication and this process has no token" in said and "RAY_AUTH_TOKEN" in said
    assert "Traceback" not in said
