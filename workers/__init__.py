"""What runs on a Ray worker: datasets, folds, protocols, the trial loop, MLflow logging.

Names are exported lazily so that ``import workers.trial`` pulls in torch only, never Ray or MLflow.
"""
from importlib import import_module

_EXPORTS = {
    "list_datasets": "workers.data", "describe_dataset": "workers.data", "DatasetError": "workers.data",
    "list_protocols": "workers.protocols", "get_protocol": "workers.protocols",
    "ProtocolError": "workers.protocols", "Protocol": "workers.protocols",
    "TrialSpec": "workers.spec", "run_trial": "workers.trial",
    "run_experiment": "workers.experiment", "TrialOutcome": "workers.experiment",
    "tracking_uri": "workers.tracking", "start_job_run": "workers.tracking",
    "log_variant_summaries": "workers.tracking", "end_job_run": "workers.tracking",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'workers' has no attribute {name!r}")
