"""A job's trials as one Ray Tune experiment.

Tune schedules the trials over the cluster (fractional GPUs pack small models several per
GPU; CPU when there is no GPU), retries a trial whose worker died from its last checkpoint
(FailureConfig), and keeps experiment state under the storage dir so a new driver calling
``run_experiment`` with the same name resumes the experiment (Tuner.restore). Callbacks run
in the driver: they hand each trial's start, epochs and end to the caller at once, log
MLflow runs, and poll ``should_stop`` so a cancel stops the running trials.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ray
from ray import tune

from . import paths, ray_cluster, tasks, tracking, tune_threads, weights
from .checkpoint import CHECKPOINT_FILE
from .result import TrialResult
from .spec import TrialSpec

log = logging.getLogger(__name__)
OnTrialComplete = Callable[[TrialSpec, "TrialResult | None", "str | None"], None]
OnTrialProgress = Callable[[TrialSpec, dict], None]
PROGRESS_METRICS = (*tracking.EPOCH_METRICS, "epoch_time_s")


@dataclass
class TrialOutcome:
    spec: TrialSpec
    status: str                      # succeeded | failed | cancelled
    result: TrialResult | None = None
    error: str | None = None
    mlflow_run_id: str | None = None
    attempts: int = 1


def _trial_resources(resources: dict) -> dict:
    """The asked-for resources, with GPUs dropped when the cluster has none."""
    unknown = set(resources) - {"cpu", "gpu"}
    if unknown:
        raise ValueError(f"unknown trial resources {sorted(unknown)}; valid: cpu, gpu")
    cpu, gpu = float(resources.get("cpu", 1)), float(resources.get("gpu", 0))
    if cpu <= 0 or gpu < 0:
        raise ValueError(f"trial resources need cpu > 0 and gpu >= 0, got cpu={cpu}, gpu={gpu}")
    if gpu and not ray.cluster_resources().get("GPU", 0):
        log.warning("no GPU in the Ray cluster: trials run on CPU")
        gpu = 0.0
    return {"cpu": cpu, "gpu": gpu}


def run_one(config: dict, specs: list[dict], data_dir: str | None, fault_injection: dict | None) -> None:
    """The Tune trainable: one trial, resumed from Tune's checkpoint after a worker failure."""
    import torch

    try:  # a plugin kind imports its plugin here; missing or changed code fails the trial, unretried
        spec = tasks.spec_from_dict(specs[config["spec_index"]])
    except ValueError as error:
        tune.report({"failed": True, "error": f"{type(error).__name__}: {error}"})
        return
    context = tune.get_context()
    cpus = context.get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    work = Path(tempfile.mkdtemp(prefix="srm-trial-"))
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as restored:
            shutil.copytree(restored, work, dirs_exist_ok=True)

    def report(metrics: dict, checkpoint_path: Path | None) -> None:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(checkpoint_path.parent))
                    if checkpoint_path else None)

    try:
        result = tasks.run_trial(spec, data_dir=data_dir, checkpoint_dir=work, report=report,
                           progress=False, fault_injection=fault_injection)
    except (ValueError, FloatingPointError) as error:  # bad spec or data, or divergence: a retry won't help
        tune.report({"failed": True, "error": f"{type(error).__name__}: {error}"})
        return
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.pop("checkpoint_path", None)
    result["ray_node_id"] = ray.get_runtime_context().get_node_id()  # which machine of the cluster ran it
    tune.report({"final": True, "top1": result.get("top1"), "result_json": json.dumps(result)})


class _StopOnRequest(tune.Stopper):
    """Polls ``should_stop`` at most once a second; once it says yes, every trial stops."""

    def __init__(self, should_stop: Callable[[], bool] | None):
        self.should_stop, self.stopped, self.last_poll = should_stop, False, 0.0

    def __call__(self, trial_id, result) -> bool:
        return self.stop_all()

    def __getstate__(self):  # Tune pickles the run config into tuner.pkl; callables stay behind
        return {**self.__dict__, "should_stop": None}

    def stop_all(self) -> bool:
        if self.should_stop and not self.stopped and time.monotonic() - self.last_poll >= 1.0:
            self.last_poll = time.monotonic()
            self.stopped = bool(self.should_stop())
        return self.stopped


class _DriverCallback(tune.Callback):
    """Turns Tune's trial events into TrialOutcomes, MLflow runs and the caller's callback."""

    def __init__(self, specs: list[TrialSpec], parent_run_id: str | None,
                 on_trial_complete: OnTrialComplete | None, on_trial_progress: OnTrialProgress | None = None):
        self.specs, self.parent_run_id = specs, parent_run_id
        self.on_complete, self.on_progress = on_trial_complete, on_trial_progress
        self.outcomes: dict[int, TrialOutcome] = {}
        self.run_ids: dict[int, str] = {}
        self.attempts: dict[int, int] = {}
        self.last_epoch: dict[int, int] = {}

    def __getstate__(self):  # see _StopOnRequest.__getstate__
        return {**self.__dict__, "on_complete": None, "on_progress": None}

    def _index(self, trial) -> int:
        return int(trial.config["spec_index"])

    def _mlflow(self, what: str, fn, *args):
        if self.parent_run_id is None:
            return None
        try:
            return fn(*args)
        except Exception as error:  # tracking trouble must not lose the trial itself
            log.warning("MLflow %s failed: %s", what, error)
            return None

    def on_trial_start(self, iteration, trials, trial, **info):
        index = self._index(trial)
        self.attempts[index] = self.attempts.get(index, 0) + 1
        if index not in self.run_ids:
            run_id = self._mlflow("start run", tracking.start_trial_run, self.parent_run_id, self.specs[index])
            if run_id:
                self.run_ids[index] = run_id
        # A retried trial goes on from its checkpoint: its progress restarts where it was, not at 0.
        self.progress(index, self.last_epoch.get(index, 0), {})

    def on_trial_result(self, iteration, trials, trial, result, **info):
        index = self._index(trial)
        if "epoch" not in result or result.get("final"):
            return
        if index in self.run_ids:
            self._mlflow("log epoch", tracking.log_epoch, self.run_ids[index], result)
        self.last_epoch[index] = int(result["epoch"])
        self.progress(index, int(result["epoch"]), {k: result[k] for k in PROGRESS_METRICS if k in result},
                      result.get("epochs"))

    def progress(self, index: int, epoch: int, metrics: dict, epochs: int | None = None) -> None:
        """Hand one trial's progress to the caller's callback; its errors are logged, never raised."""
        if self.on_progress is None:
            return
        spec = self.specs[index]
        update = {"epoch": epoch, "epochs": epochs or _planned_epochs(spec), "metrics": metrics,
                  "mlflow_run_id": self.run_ids.get(index), "attempt": self.attempts.get(index, 0)}
        try:
            self.on_progress(spec, update)
        except Exception:
            log.exception("on_trial_progress raised for %s", spec.variant_label())

    def record(self, index: int, status: str, result: TrialResult | None = None, error: str | None = None,
               checkpoint_file: Path | None = None) -> TrialOutcome:
        """Keep the trial's outcome, close its MLflow run and hand it to the caller's callback."""
        spec, run_id = self.specs[index], self.run_ids.get(index)
        if result is not None:
            result = TrialResult(**result, mlflow_run_id=run_id)
        logged = False
        if index in self.run_ids:
            mlflow_status = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}[status]
            logged = self._mlflow("finish run", tracking.finish_trial_run, self.run_ids[index], spec, result, error,
                                  checkpoint_file, mlflow_status)
        if result is not None and status == "succeeded":
            try:
                result["weights_uri"] = weights.keep(checkpoint_file, result["content_hash"], run_id, bool(logged))
            except Exception:  # the trial's numbers stand without its weights
                log.exception("could not keep the weights of %s", spec.variant_label())
        outcome = TrialOutcome(spec, status, result, error, run_id, self.attempts.get(index, 0))
        self.outcomes[index] = outcome
        if self.on_complete is not None:
            try:
                self.on_complete(spec, result, error)
            except Exception:
                log.exception("on_trial_complete raised for %s", spec.variant_label())
        return outcome

    def cancelled(self, index: int) -> TrialOutcome:
        return self.record(index, "cancelled", error="cancelled before it finished")

    def on_trial_complete(self, iteration, trials, trial, **info):
        index, last = self._index(trial), trial.last_result or {}
        if last.get("final"):
            checkpoint = Path(trial.checkpoint.path) / CHECKPOINT_FILE if trial.checkpoint is not None else None
            self.record(index, "succeeded", json.loads(last["result_json"]), checkpoint_file=checkpoint)
        elif last.get("failed"):
            self.record(index, "failed", error=last.get("error"))
        else:
            self.cancelled(index)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.record(self._index(trial), "failed", error=_error_text(trial))


def _planned_epochs(spec: TrialSpec) -> int | None:
    """The trial's epochs when its protocol fixes them; None for an iterations budget
    (its epoch count depends on the training split's size, known only inside the trial)."""
    return tasks.planned_epochs(spec)


def _error_text(trial) -> str:
    """The last line of the trial's error file: the exception, without Ray's traceback."""
    error = getattr(trial, "error_file", None) or ""
    text = ""
    if error and Path(error).is_file():
        lines = [line for line in Path(error).read_text().splitlines() if line.strip()]
        text = lines[-1] if lines else ""
    return text or "the trial's worker failed (see the Ray logs)"


def run_experiment(name: str, specs: list[TrialSpec | dict], *, data_dir=None, storage_dir=None,
                   resources: dict | None = None, mlflow_parent_run_id: str | None = None,
                   on_trial_complete: OnTrialComplete | None = None,
                   on_trial_progress: OnTrialProgress | None = None,
                   should_stop: Callable[[], bool] | None = None, max_failures: int = 1,
                   fault_injection: dict | None = None) -> list[TrialOutcome]:
    """Run (or resume, when ``name`` already has state in the storage dir) a job's trials on Ray.

    Returns one TrialOutcome per spec, in the order of ``specs``. Callbacks run in the driver:
    ``on_trial_progress(spec, progress)`` when Tune starts a trial (epoch 0, or the epoch a
    retry goes on from) and after each of its epochs, with ``progress`` = {"epoch", "epochs"
    (None while unknown), "metrics" (that epoch's, e.g. val_top1), "mlflow_run_id", "attempt"};
    ``on_trial_complete(spec, result, error)`` once it ends, where a result carries
    ``result["mlflow_run_id"]`` (None without an MLflow parent run). ``fault_injection`` is a
    test hook passed to every trial (see ``workers.trial._maybe_crash``).
    """
    specs = [s if not isinstance(s, dict) else tasks.spec_from_dict(s) for s in specs]
    if not specs:
        return []
    # Quiet by default: the caller reports progress (callbacks, MLflow), not Tune's console tables.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray_cluster.connect()
    storage = Path(storage_dir) if storage_dir else paths.ray_storage_dir()
    storage.mkdir(parents=True, exist_ok=True)
    tune_threads.install()  # other dispatcher threads may start their own experiments meanwhile
    trainable = tune_threads.registered_trainable(tune.with_resources(
        tune.with_parameters(run_one, specs=[s.to_dict() for s in specs],
                             data_dir=str(data_dir) if data_dir else None, fault_injection=fault_injection),
        _trial_resources(resources or {"cpu": 1, "gpu": 0})), name)
    stopper = _StopOnRequest(should_stop)
    driver = _DriverCallback(specs, mlflow_parent_run_id, on_trial_complete, on_trial_progress)
    run_config = tune.RunConfig(
        name=name, storage_path=str(storage), stop=stopper, callbacks=[driver], verbose=0,
        failure_config=tune.FailureConfig(max_failures=max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1))
    experiment_path = storage / name
    _check_same_specs(experiment_path, specs)
    if tune.Tuner.can_restore(str(experiment_path)):
        tuner = tune.Tuner.restore(str(experiment_path), trainable=trainable, resume_errored=True,
                                   param_space={"spec_index": tune.grid_search(list(range(len(specs))))})
        # Tune restores the run config pickled at the start, whose callbacks lost their callables;
        # there is no public setter, so the fresh driver callback and stopper are put back here.
        restored_config = tuner._local_tuner.get_run_config()
        restored_config.callbacks, restored_config.stop = [driver], stopper
    else:
        tuner = tune.Tuner(trainable, run_config=run_config,
                           param_space={"spec_index": tune.grid_search(list(range(len(specs))))},
                           tune_config=tune.TuneConfig(reuse_actors=True))  # imports once per worker
    grid = tuner.fit()
    return _outcomes(specs, driver, grid)


SPECS_FILE = "srm_bench_specs.json"


def _check_same_specs(experiment_path: Path, specs: list[TrialSpec]) -> None:
    """A resumed experiment must be given the specs it started with (trials are spec indices)."""
    listed = [s.to_dict() for s in specs]
    stored = experiment_path / SPECS_FILE
    if stored.is_file():
        if json.loads(stored.read_text()) != listed:
            raise ValueError(f"experiment {experiment_path.name!r} already exists in {experiment_path.parent} "
                             "with other trial specs; resume it with the same specs or use a new name")
        return
    experiment_path.mkdir(parents=True, exist_ok=True)
    stored.write_text(json.dumps(listed))


def _spec_index(result) -> int | None:
    """The trial's index into ``specs``, from its config or (if it never reported) its folder name."""
    if result.config and "spec_index" in result.config:
        return int(result.config["spec_index"])
    found = re.search(r"spec_index=(\d+)", str(result.path or ""))
    return int(found.group(1)) if found else None


def _outcomes(specs: list[TrialSpec], driver: _DriverCallback, grid) -> list[TrialOutcome]:
    """Outcomes seen by the callback, completed from the result grid.

    Trials that finished under an earlier driver (a resumed experiment) come from the grid and
    are not announced again; trials stopped before they reported anything are announced as
    cancelled.
    """
    outcomes = dict(driver.outcomes)
    for result in grid:
        index = _spec_index(result)
        if index is None or index in outcomes:
            continue
        metrics = result.metrics or {}
        if metrics.get("final"):
            result_dict = json.loads(metrics["result_json"])
            if result.checkpoint is not None:  # finished under an earlier driver: keep its weights now
                result_dict["weights_uri"] = weights.keep(Path(result.checkpoint.path) / "last.pt",
                                                          result_dict["content_hash"], None, False)
            outcomes[index] = TrialOutcome(specs[index], "succeeded", result_dict)
        elif metrics.get("failed") or result.error is not None:
            error = metrics.get("error") or str(result.error).strip().splitlines()[-1]
            outcomes[index] = TrialOutcome(specs[index], "failed", None, error)
    for index in range(len(specs)):
        if index not in outcomes:
            outcomes[index] = driver.cancelled(index)
    return [outcomes[i] for i in range(len(specs))]
