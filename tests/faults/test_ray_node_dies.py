"""A Ray worker node dies mid-trial: the trial goes on on another node from its last checkpoint.

The cluster is local (ray.cluster_utils: a head without CPUs, two worker nodes, each its own raylet);
its checkpoints are on this machine's disk, which every node reads. On a real cluster that is the
shared storage docs/service.md asks for. The driver runs in its own process: it needs a Ray of its own.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_a_worker_node_dies_mid_trial(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", "tests.faults.ray_node_driver", str(tmp_path)], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stderr[-5000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    print(outcome)
    killed = outcome["killed"]
    assert killed and killed["title"].startswith("ray::run_one"), outcome  # the node training it was killed
    assert outcome["status"] == "succeeded" and outcome["attempts"] == 2, outcome
    # resumed from a checkpoint written before the kill, not from epoch 0
    assert 1 <= outcome["resumed_from_epoch"] <= killed["after_epoch"], outcome
    assert [attempt for attempt, _ in outcome["starts"]] == [1, 2], outcome
