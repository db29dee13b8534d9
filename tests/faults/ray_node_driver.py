"""Driver for the node-death fault test, run as its own process (it needs a Ray of its own):
a local cluster (a head with no CPUs, two worker nodes of one CPU each), one trial; when the
trial reports its second epoch, the node running it is killed. Prints the outcome as JSON.

    python -m tests.faults.ray_node_driver FOLDER
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

TRAINABLE_TITLES = ("run_one", "ImplicitFunc", "_Inner", "Trainable")


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 1


def main(folder: Path) -> None:
    import ray
    from ray._common.utils import get_default_ray_temp_dir
    from ray.cluster_utils import Cluster

    from tests.workers.specs import tiny_spec
    from workers.experiment import run_experiment

    # Cluster writes the head's address to <Ray's default temp dir>/ray_current_cluster whatever
    # temp_dir the nodes get; on a machine where no Ray has run yet that folder does not exist
    Path(get_default_ray_temp_dir()).mkdir(parents=True, exist_ok=True)
    cluster = Cluster(initialize_head=True, connect=True,
                      head_node_args={"num_cpus": 0, "include_dashboard": False,
                                      "temp_dir": str(folder / "ray-tmp")})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    killed: dict = {}

    def node_running_the_trial():
        """The worker node whose raylet is an ancestor of the process training the trial."""
        raylets = {node.all_processes["raylet"][0].process.pid: node for node in workers}
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                continue
            if not title.startswith("ray::") or not any(name in title for name in TRAINABLE_TITLES):
                continue  # Ray's own processes (agents, idle workers), not the trial's actor
            pid = ancestor = int(proc.name)
            while ancestor > 1:
                ancestor = _parent(ancestor)
                if ancestor in raylets:
                    return raylets[ancestor], pid, title
        titles = [(p / "cmdline").read_bytes()[:80] for p in Path("/proc").glob("[0-9]*")
                  if (p / "cmdline").exists() and (p / "cmdline").read_bytes().startswith(b"ray::")]
        raise RuntimeError(f"no worker node runs the trial; Ray processes: {titles}")

    def on_progress(spec, update) -> None:
        if killed or update["epoch"] < 2 or not update["metrics"]:
            return
        try:
            node, pid, title = node_running_the_trial()
        except RuntimeError as err:
            killed.update(error=str(err))
            return
        killed.update(node=workers.index(node), pid=pid, title=title, after_epoch=update["epoch"])
        cluster.remove_node(node, allow_graceful=False)
        workers.remove(node)
        workers.append(cluster.add_node(num_cpus=1))  # a replacement, as an autoscaler would bring

    spec = tiny_spec("srm", dataset="textures[n_per_class=40,image_size=16]", epochs=8)
    progress: list = []
    (outcome,) = run_experiment("node-death", [spec], data_dir=folder / "data", storage_dir=folder / "ray-results",
                                max_failures=2,
                                on_trial_progress=lambda s, u: (progress.append(u), on_progress(s, u)))
    print(json.dumps({"killed": killed, "status": outcome.status, "error": outcome.error,
                      "attempts": outcome.attempts,
                      "resumed_from_epoch": (outcome.result or {}).get("resumed_from_epoch"),
                      "starts": [(u["attempt"], u["epoch"]) for u in progress if not u["metrics"]],
                      "last_epoch_before_kill": max((u["epoch"] for u in progress if u["metrics"]
                                                     and u["attempt"] == 1), default=None)}), flush=True)
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
