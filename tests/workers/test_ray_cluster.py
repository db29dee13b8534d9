"""How the project reaches a Ray cluster, for addresses that fail before any token is needed.

The token paths need a cluster with its own token; tests/e2e/test_ray_cluster.py starts one.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from workers import ray_cluster


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("value", ["", "local"])
def test_unset_and_local_mean_a_local_ray(monkeypatch, value):
    monkeypatch.setenv("RAY_ADDRESS", value)
    assert ray_cluster.address() is None
    assert ray_cluster.status() == {"ok": True, "address": None, "note": "a local Ray is started on demand"}


def test_a_malformed_address_says_what_it_should_look_like(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "ray-head")
    check = ray_cluster.status(max_age=0)
    assert check["ok"] is False and "should look like host:port" in check["error"]


def test_an_unreachable_head_is_reported_not_raised(monkeypatch):
    address = f"127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("RAY_ADDRESS", address)
    check = ray_cluster.status(max_age=0)
    assert check["ok"] is False and check["address"] == address
    assert check["error"].startswith(f"Ray head at {address} is not reachable")
    with pytest.raises(ray_cluster.RayUnavailable, match="not reachable"):
        ray_cluster.probe(address, timeout=1)


def test_the_token_source_follows_rays_order(monkeypatch, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("abc")
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    assert ray_cluster.token_source() is None
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    assert ray_cluster.token_source() is None
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token_file))
    assert ray_cluster.token_source() == str(token_file)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "xyz")
    assert ray_cluster.token_source() == "$RAY_AUTH_TOKEN"


LOCAL_RAY_FROM_A_THREAD = """
import threading, time
import ray
from workers import ray_cluster

thread = threading.Thread(target=ray_cluster.connect)  # as a dispatcher's job thread does
thread.start()
thread.join()
time.sleep(3)  # the thread has ended; a Ray bound to it would be gone by now
print("answer", ray.get(ray.remote(lambda: 41 + 1).remote(), timeout=60))
ray.shutdown()
"""


@pytest.mark.slow
def test_a_local_ray_outlives_the_thread_that_started_it(tmp_path):
    short = tempfile.mkdtemp(prefix="ray-")  # Ray's socket paths must stay under 107 bytes
    env = {**os.environ, "RAY_TMPDIR": short, "RAY_ADDRESS": "", "SRM_BENCH_HOME": str(tmp_path)}
    try:
        done = subprocess.run([sys.executable, "-c", LOCAL_RAY_FROM_A_THREAD], env=env, capture_output=True,
                              text=True, timeout=180, cwd=Path(__file__).parents[2])
    finally:
        shutil.rmtree(short, ignore_errors=True)
    assert done.returncode == 0 and "answer 42" in done.stdout, done.stdout[-2000:] + done.stderr[-3000:]
