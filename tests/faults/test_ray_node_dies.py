"""A Ray worker node dies mid-trial: the trial goes on on another node from its last checkpoint.

The cluster is local (ray.cluster_utils: a head without CPUs, two worker nodes, each its own raylet);
its checkpoints are on this machine's disk, which every node reads. On a real cluster that is the
shared storage docs/service.md asks for. The driver runs in its own process: it needs a Ray of its own.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

from tests.conftest import REPO_ROOT


def test_a_worker_node_dies_mid_trial():
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    folder = tempfile.mkdtemp(prefix="srm-rn-")  # short: Ray's socket paths live under it (107 bytes at most)
    try:
        done = subprocess.run([sys.executable, "-m", "tests.faults.ray_node_driver", folder], cwd=REPO_ROOT,
                              env=env, capture_output=True, text=True, timeout=540)
    finally:  # the cluster's processes, should the driver have died before shutting them down
        subprocess.run(["pkill", "-9", "-f", folder], check=False)
        shutil.rmtree(folder, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-5000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    print(outcome)
    killed = outcome["killed"]
    assert killed and "title" in killed, outcome  # the node training it was killed
    assert outcome["status"] == "succeeded" and outcome["attempts"] == 2, outcome
    # resumed from a checkpoint written before the kill, not from epoch 0
    assert 1 <= outcome["resumed_from_epoch"] <= killed["after_epoch"], outcome
    assert [attempt for attempt, _ in outcome["starts"]] == [1, 2], outcome
