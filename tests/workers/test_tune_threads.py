"""Two Tune experiments at once in one process, as a dispatcher running several jobs does."""
from __future__ import annotations

import threading

import pytest

from tests.workers.specs import tiny_spec
from workers.experiment import run_experiment

pytestmark = pytest.mark.usefixtures("ray_address")


def test_two_experiments_in_two_threads_each_run_their_own_specs(tmp_path, mlflow_home):
    jobs = {"job-left": [tiny_spec("baseline", fold=f, epochs=1, job_id="left") for f in (0, 1)],
            "job-right": [tiny_spec("se", fold=f, epochs=1, job_id="right", seed=7) for f in (2, 3)]}
    outcomes: dict[str, list] = {}
    started = threading.Barrier(2)

    def run(name: str) -> None:
        started.wait()  # both reach Tuner.fit() together: registry writes overlap
        outcomes[name] = run_experiment(name, jobs[name], data_dir=tmp_path, storage_dir=tmp_path / "ray")

    threads = [threading.Thread(target=run, args=(name,)) for name in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    for name, specs in jobs.items():
        assert [o.status for o in outcomes[name]] == ["succeeded"] * 2, [o.error for o in outcomes[name]]
        # each trial trained its own job's spec: the other job's trainable never replaced it
        assert [o.result["content_hash"] for o in outcomes[name]] == [
            s.content_hash(o.result["dataset_fingerprint"]) for s, o in zip(specs, outcomes[name], strict=True)]
        assert [o.result["split"] for o in outcomes[name]] == [f"fold {s.fold} of 5" for s in specs]
