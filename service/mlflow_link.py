"""A link that opens the leaderboard in MLflow's UI: the `srm-bench-leaderboard` experiment's runs
table, filtered to a dataset, sorted by top1_mean, with the leaderboard's columns shown.

MLflow's runs page reads a view (filter, sort order, columns) from an experiment tag
``mlflow.sharedViewState.<key>`` named by the ``viewStateShareKey`` URL parameter, which is how
its own "share" button makes links. MLflow 3.17's UI picks an experiment's first page by its
GenAI / Model training switch (the ``workflowType`` URL parameter, else the user's last choice)
rather than by the experiment's kind tag, so every link here names the model-training side.
The UI's address: SRM_BENCH_MLFLOW_UI_URL, else
MLFLOW_TRACKING_URI when that is an MLflow server, else `mlflow ui`'s default address, with the
command that starts it.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

UI_URL_ENV = "SRM_BENCH_MLFLOW_UI_URL"
MLFLOW_UI_DEFAULT = "http://127.0.0.1:5000"  # where `mlflow ui` listens unless told otherwise
SHARED_VIEW_TAG = "mlflow.sharedViewState."
LEADERBOARD_METRICS = ("top1_mean", "top1_std", "gain_top1", "n_folds", "corrected_t_pvalue", "p_better")
LEADERBOARD_PARAMS = ("dataset", "backbone", "protocol", "variant", "job_id")
MODEL_TRAINING = "workflowType=machine_learning"


@dataclass(frozen=True)
class UiAddress:
    url: str
    start_command: str | None  # how to start the UI when none is configured


def ui_address() -> UiAddress:
    """Where MLflow's UI answers, and the `mlflow ui` command to run when nothing says so."""
    from workers.tracking import tracking_uri

    configured = os.environ.get(UI_URL_ENV)
    if configured:
        return UiAddress(configured.rstrip("/"), None)
    store = tracking_uri()
    if store.startswith(("http://", "https://")):
        return UiAddress(store.rstrip("/"), None)
    return UiAddress(MLFLOW_UI_DEFAULT, f"mlflow ui --backend-store-uri {store}")


def leaderboard_view(dataset: str | None) -> dict:
    """The runs page's view: search facets (filter, order) and UI state (columns)."""
    columns = ["attributes.`Dataset`", *(f"metrics.`{m}`" for m in LEADERBOARD_METRICS),
               *(f"params.`{p}`" for p in LEADERBOARD_PARAMS)]
    return {"searchFilter": f"params.dataset = '{dataset}'" if dataset else "",
            "orderByKey": "metrics.`top1_mean`", "orderByAsc": False, "selectedColumns": columns}


def leaderboard_link(dataset: str | None = None) -> str:
    """Store the view in the leaderboard experiment (once per distinct view) and return its link."""
    from workers.tracking import LEADERBOARD_EXPERIMENT, client, experiment_id

    mlflow = client()
    experiment = experiment_id(mlflow, LEADERBOARD_EXPERIMENT)
    view = json.dumps(leaderboard_view(dataset), sort_keys=True)
    key = "srm-bench-" + hashlib.sha256(view.encode()).hexdigest()[:16]
    mlflow.set_experiment_tag(experiment, SHARED_VIEW_TAG + key, view)
    return f"{experiment_runs_link(experiment)}&viewStateShareKey={key}"


def experiment_runs_link(experiment_id: str) -> str:
    """The experiment's runs table in MLflow's UI."""
    return f"{ui_address().url}/#/experiments/{experiment_id}/runs?{MODEL_TRAINING}"


def job_runs_link() -> str:
    """The runs table of the experiment every job logs to."""
    from workers.tracking import client, experiment_id

    return experiment_runs_link(experiment_id(client()))
