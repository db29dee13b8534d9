"""MLflow records: a parent run per job, one nested run per trial, one summary run per variant,
and a top-level copy of each summary in the ``srm-bench-leaderboard`` experiment.

Everything goes through an explicit ``MlflowClient`` (no global active run), and only the
driver writes (the Ray workers never touch MLflow), so a local SQLite store has one writer.
Ray Tune's own MLflow callback cannot nest runs (ray-project/ray#19909, #19978), so the
``mlflow.parentRunId`` tag is set here. Default store: SQLite under SRM_BENCH_HOME; the
file store is in maintenance mode in MLflow 3 and refuses to start.
"""
from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, Metric, Param
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from . import paths, settings
from .result import TrialResult
from .run_names import job_run_name, summary_run_name, trial_run_name
from .spec import TrialSpec
from .style.tracking import STYLE_COMPARISON_METRICS, STYLE_EPOCH_METRICS, STYLE_SUMMARY_METRICS
from .tasks import spec_from_dict
from .version import code_version

EXPERIMENT_NAME = "srm-bench"
LEADERBOARD_EXPERIMENT = "srm-bench-leaderboard"
PARENT_TAG = MLFLOW_PARENT_RUN_ID
KIND_TAG = "srm_bench.kind"  # job | trial | variant_summary | leaderboard
# MLflow 3's UI opens an experiment by its kind: GenAI ones on traces, model-training ones on the runs table.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
DATASET_CONTEXT_TAG = "mlflow.data.context"
DIGEST_LENGTH = 32  # MLflow caps a dataset digest at 36 characters
# Per-variant numbers the caller computes (gain over the baseline, tests), copied onto summary runs.
COMPARISON_METRICS = ("n_folds", "gain_top1", "corrected_t_pvalue", "p_better", *STYLE_COMPARISON_METRICS)
SUMMARY_METRICS = ("top1", "top5", "loss", "params", "macs", "train_time_s", "images_per_s", "peak_memory_mb",
                   *STYLE_SUMMARY_METRICS)
MAX_PARAM_LENGTH = 6000


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else SQLite at $SRM_BENCH_HOME/mlflow.db."""
    configured = settings.current().mlflow_tracking_uri
    if configured:
        return configured
    paths.home().mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{paths.home() / 'mlflow.db'}"


# MLflow's client retries an absent tracking server 7 times with growing pauses (minutes) by default,
# which held a job's end, and the dispatcher with it, while the server was down. SQL keeps the numbers
# and the dispatcher repairs the runs when the server is back, so a few seconds of retries do here.
# Each can still be set in the environment.
CLIENT_RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                         "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def client() -> MlflowClient:
    for variable, value in CLIENT_RETRY_DEFAULTS.items():
        os.environ.setdefault(variable, value)
    return MlflowClient(tracking_uri())


def experiment_id(mlflow: MlflowClient, name: str = EXPERIMENT_NAME) -> str:
    """The experiment's id, created on first use (artifacts under the home for the default store),
    marked as a model-training experiment."""
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        if found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # made before the tag existed
            mlflow.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return found.experiment_id
    location = None
    if not settings.current().mlflow_tracking_uri:
        location = (paths.home() / "mlartifacts").as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location,
                                        tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    except Exception:  # another process created it first
        found = mlflow.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def dataset_input(name: str, fingerprint: str, context: str, **tags: str) -> DatasetInput:
    """The dataset as an MLflow dataset input (the runs table's Dataset column): its name, the
    first 32 hex characters of its fingerprint as digest, and ``tags`` (e.g. the split hash)."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    dataset = MetaDataset(CodeDatasetSource({"srm_bench.dataset": name, "fingerprint": fingerprint}),
                          name=name, digest=fingerprint[:DIGEST_LENGTH])
    # MlflowClient.log_inputs takes entities; the fluent mlflow.log_input converts the same way.
    return DatasetInput(dataset._to_mlflow_entity(),
                        tags=[InputTag(DATASET_CONTEXT_TAG, context), *(InputTag(k, v) for k, v in tags.items())])


def _flatten(prefix: str, value, into: dict) -> dict:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, into)
    else:
        text = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
        into[prefix] = text[:MAX_PARAM_LENGTH]
    return into


def _log_params(mlflow: MlflowClient, run_id: str, params: dict) -> None:
    items = [Param(k, v) for k, v in _flatten("", params, {}).items()]
    for start in range(0, len(items), 100):
        mlflow.log_batch(run_id, params=items[start:start + 100])


def start_job_run(job_id: str, name: str | None, spec: dict, *, experiment_name: str = EXPERIMENT_NAME) -> str:
    """The job's parent run (left running; trial and summary runs nest under it). Returns its id."""
    mlflow = client()
    run = mlflow.create_run(experiment_id(mlflow, experiment_name), run_name=job_run_name(job_id, name, spec),
                            tags={KIND_TAG: "job", "job_id": str(job_id), "code_version": code_version()})
    _log_params(mlflow, run.info.run_id, {"job": spec})
    return run.info.run_id


def end_job_run(parent_run_id: str, status: str = "FINISHED") -> None:
    """Close the parent run: FINISHED, FAILED or KILLED (cancelled)."""
    client().set_terminated(parent_run_id, status=status)


def trial_tags(spec: TrialSpec) -> dict[str, str]:
    return {KIND_TAG: "trial", "variant": spec.variant_label(), "dataset": spec.dataset,
            "backbone": spec.backbone, "repeat": str(spec.repeat), "fold": str(spec.fold),
            "seed": str(spec.seed),
            "job_id": str(spec.job_id), "model": spec.model_name()}


def start_trial_run(parent_run_id: str, spec: TrialSpec, protocol: dict | None = None) -> str:
    """A trial's run, nested under its job's parent run, with the spec and protocol as params."""
    mlflow = client()
    parent = mlflow.get_run(parent_run_id)
    run = mlflow.create_run(parent.info.experiment_id, run_name=trial_run_name(spec),
                            tags={PARENT_TAG: parent_run_id, **trial_tags(spec)})
    _log_params(mlflow, run.info.run_id, {"spec": spec.to_dict(), "code_version": code_version(),
                                          **({"protocol": protocol} if protocol else {})})
    return run.info.run_id


EPOCH_METRICS = ("train_loss", "train_acc", "val_loss", "val_top1", "val_top5", "lr", "images_per_s",
                 *STYLE_EPOCH_METRICS)


def log_epoch(run_id: str, metrics: dict) -> None:
    """One epoch's curves, at step = epoch."""
    step = int(metrics["epoch"])
    now = int(time.time() * 1000)
    client().log_batch(run_id, metrics=[Metric(k, float(metrics[k]), now, step)
                                        for k in EPOCH_METRICS if k in metrics])


def training_curve(history: list[dict], title: str):
    """Fig. 3-style curves: loss and top-1 per epoch, train and validation.

    Built on a bare Figure (no pyplot), so the caller's matplotlib backend is left alone.
    """
    from matplotlib.figure import Figure

    epochs = [h["epoch"] for h in history]
    figure = Figure(figsize=(9, 3.5))
    loss_axis, acc_axis = figure.subplots(1, 2)
    loss_axis.plot(epochs, [h["train_loss"] for h in history], label="train")
    loss_axis.plot(epochs, [h["val_loss"] for h in history], label="validation")
    loss_axis.set(xlabel="epoch", ylabel="loss", title=title)
    acc_axis.plot(epochs, [h["train_acc"] for h in history], label="train")
    acc_axis.plot(epochs, [h["val_top1"] for h in history], label="validation top-1")
    acc_axis.set(xlabel="epoch", ylabel="accuracy (%)")
    for axis in (loss_axis, acc_axis):
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def finish_trial_run(run_id: str, spec: TrialSpec, result: TrialResult | None, error: str | None = None,
                     checkpoint_file: str | Path | None = None, status: str | None = None) -> bool:
    """Final metrics, hashes, the curve plot and (unless opted out) the checkpoint; then close the run.
    Returns whether the checkpoint was logged (at ``workers.weights.CHECKPOINT_ARTIFACT``)."""
    mlflow = client()
    if result is None:
        mlflow.set_tag(run_id, "error", (error or "")[:5000])
        mlflow.set_terminated(run_id, status=status or "FAILED")
        return False
    _log_params(mlflow, run_id, {"dataset_fingerprint": result["dataset_fingerprint"],
                                 "split_hash": result["split_hash"], "split": result["split"],
                                 "protocol_hash": result["protocol_hash"],
                                 "content_hash": result["content_hash"], "device": result["device"],
                                 **({"param_groups": result["param_groups"]} if result.get("param_groups") else {})})
    mlflow.log_inputs(run_id, [dataset_input(spec.dataset, result["dataset_fingerprint"], "cross-validation",
                                             split_hash=result["split_hash"], fold=str(spec.fold))])
    final = {k: result[k] for k in SUMMARY_METRICS if result.get(k) is not None}
    final.update({f"group_top1.{g}": v for g, v in (result.get("group_top1") or {}).items()})
    for name, extra in (result.get("extra_evals") or {}).items():
        final.update({f"{name}.{k}": extra[k] for k in ("top1", "top5", "loss")})
    now = int(time.time() * 1000)
    mlflow.log_batch(run_id, metrics=[Metric(k.replace(" ", "_"), float(v), now, 0) for k, v in final.items()])
    if result.get("task") == "style_transfer":
        from .style.tracking import log_style_run

        log_style_run(mlflow, run_id, spec, result)
    elif result.get("history"):
        figure = training_curve(result["history"], f"{spec.variant_label()} fold {spec.fold}")
        mlflow.log_figure(run_id, figure, "training_curve.png")
    logged = bool(checkpoint_file and result.get("protocol", {}).get("log_checkpoint", True)
                  and Path(checkpoint_file).is_file())
    if logged:
        mlflow.log_artifact(run_id, str(checkpoint_file), artifact_path="checkpoint")
    mlflow.set_terminated(run_id, status=status or "FINISHED")
    return logged


def log_trial(parent_run_id: str, spec: TrialSpec, result: TrialResult, checkpoint_file=None) -> str:
    """Record an already finished trial (run outside Ray) in one go; returns its run id."""
    run_id = start_trial_run(parent_run_id, spec, result.get("protocol"))
    for metrics in result.get("history", []):
        log_epoch(run_id, metrics)
    finish_trial_run(run_id, spec, result, checkpoint_file=checkpoint_file or result.get("checkpoint_path"))
    return run_id


def _pairs(outcomes_or_results: Iterable) -> list[tuple[TrialSpec, TrialResult]]:
    """(spec, result) of succeeded trials from TrialOutcomes, (spec, result) pairs or dicts."""
    pairs = []
    for item in outcomes_or_results:
        if isinstance(item, tuple):
            spec, result = item
        elif isinstance(item, dict):
            spec, result = item["spec"], item.get("result")
        else:
            if getattr(item, "status", "succeeded") != "succeeded":
                continue
            spec, result = item.spec, item.result
        if result is not None:
            pairs.append((spec_from_dict(spec) if isinstance(spec, dict) else spec, result))
    return pairs


def log_variant_summaries(parent_run_id: str, outcomes_or_results: Iterable,
                          comparisons: dict[str, dict] | None = None) -> dict[str, str]:
    """One run per variant whose metrics are means and stds over folds and seeds (``top1_mean``...).

    ``comparisons`` maps a variant to numbers computed by the caller (COMPARISON_METRICS: the gain
    over the baseline, its tests); those present are logged too. Each summary goes twice: nested
    under the job's run, and as a top-level run of the ``srm-bench-leaderboard`` experiment, whose
    runs table sorted by ``top1_mean`` is the leaderboard. Called again for the same job, it updates
    the existing runs instead of adding new ones. Returns the nested runs' ids by variant.
    """
    mlflow = client()
    parent = mlflow.get_run(parent_run_id)
    job_id = parent.data.tags.get("job_id", "")
    board_experiment = experiment_id(mlflow, LEADERBOARD_EXPERIMENT)
    grouped: dict[str, list[tuple[TrialSpec, dict]]] = defaultdict(list)
    for spec, result in _pairs(outcomes_or_results):
        grouped[spec.variant_label()].append((spec, result))
    nested = _runs_by_variant(mlflow, parent.info.experiment_id,
                              f"tags.`{PARENT_TAG}` = '{parent_run_id}' and tags.`{KIND_TAG}` = 'variant_summary'")
    on_board = _runs_by_variant(mlflow, board_experiment,
                                f"tags.job_id = '{job_id}' and tags.`{KIND_TAG}` = 'leaderboard'")
    run_ids = {}
    for label, members in sorted(grouped.items()):
        spec, first = members[0]
        fields = {"dataset": spec.dataset, "backbone": spec.backbone, "protocol": spec.protocol,
                  "variant": label, "job_id": job_id}
        summary = {"name": summary_run_name(label, spec.dataset, spec.backbone), "params": fields,
                   "metrics": _summary_metrics(members, (comparisons or {}).get(label) or {}),
                   "input": dataset_input(spec.dataset, first["dataset_fingerprint"], "cross-validation")
                   if first.get("dataset_fingerprint") else None}
        tags = {**fields, "model": spec.model_name()}
        run_ids[label] = _write_summary(mlflow, parent.info.experiment_id, nested.get(label), summary,
                                        {PARENT_TAG: parent_run_id, KIND_TAG: "variant_summary", **tags})
        _write_summary(mlflow, board_experiment, on_board.get(label), summary,
                       {KIND_TAG: "leaderboard", "job_run_id": parent_run_id, **tags})
    return run_ids


def log_analysis(parent_run_id: str, analysis_id: str, metrics: dict[str, float], files: list[str]) -> None:
    """An analysis's numbers as metrics of the job's run and its plots as artifacts under analyses/<id>/."""
    import re

    mlflow = client()
    now = int(time.time() * 1000)
    clean = {re.sub(r"[^\w\-. /:]", "_", f"analysis.{key}"): float(value) for key, value in metrics.items()}
    items = [Metric(key, value, now, 0) for key, value in clean.items()]
    for start in range(0, len(items), 500):
        mlflow.log_batch(parent_run_id, metrics=items[start:start + 500])
    for path in files:
        mlflow.log_artifact(parent_run_id, path, artifact_path=f"analyses/{analysis_id}")


def _runs_by_variant(mlflow: MlflowClient, experiment: str, filter_string: str) -> dict[str, str]:
    return {run.data.tags.get("variant"): run.info.run_id
            for run in mlflow.search_runs([experiment], filter_string=filter_string)}


def _summary_metrics(members: list[tuple[TrialSpec, dict]], comparison: dict) -> dict[str, float]:
    """Means and sample stds over the members' results, the trial count, and the caller's numbers."""
    metrics = {"n_trials": float(len(members))}  # n_folds counts (repeat, fold) splits: the caller's
    for key in SUMMARY_METRICS:
        values = np.asarray([r[key] for _, r in members if r.get(key) is not None], dtype=float)
        if len(values):
            metrics[f"{key}_mean"] = float(values.mean())
            metrics[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    metrics.update({key: float(comparison[key]) for key in COMPARISON_METRICS
                    if isinstance(comparison.get(key), (int, float)) and np.isfinite(comparison[key])})
    return metrics


def _write_summary(mlflow: MlflowClient, experiment: str, run_id: str | None, summary: dict,
                   tags: dict[str, str]) -> str:
    """Create (or update, given ``run_id``) one finished summary run; returns its id."""
    created = run_id is None
    if created:
        run_id = mlflow.create_run(experiment, run_name=summary["name"], tags=tags).info.run_id
    now = int(time.time() * 1000)
    mlflow.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in summary["metrics"].items()],
                     params=[Param(k, v) for k, v in summary["params"].items()] if created else [])
    if created and summary["input"] is not None:
        mlflow.log_inputs(run_id, [summary["input"]])
    mlflow.set_terminated(run_id, status="FINISHED")
    return run_id


def close_running_runs(parent_run_id: str, job_id: str, status: str = "KILLED",
                       keep: Iterable[str] = ()) -> list[str]:
    """Close the job's runs still RUNNING (left by a driver that died) with ``status``, except
    ``keep`` (the job's run when a dispatcher takes it over). Returns the ids it closed."""
    mlflow = client()
    experiment = mlflow.get_run(parent_run_id).info.experiment_id
    kept = set(keep)
    stale = [run.info.run_id for run in mlflow.search_runs(
        [experiment], filter_string=f"tags.job_id = '{job_id}' and attributes.status = 'RUNNING'",
        max_results=50000) if run.info.run_id not in kept]
    for run_id in stale:
        mlflow.set_terminated(run_id, status=status)
    return stale
