"""TrialResult: what a finished trial reports, typed in one place.

It travels as JSON (Ray Tune reports, the SQL ``trials.metrics`` column, MLflow params), so it
is a TypedDict: every key and its type are declared here, and the value stays a plain dict
that round-trips through JSON unchanged. Produced by ``workers.trial.run_trial``; read by
``workers.experiment``, ``workers.tracking``, ``service.dispatcher`` and ``service.results``.
"""
from __future__ import annotations

from typing import Any, TypedDict


class ParamGroup(TypedDict):
    weight_decay: float
    tensors: int       # parameter tensors in the group
    params: int        # scalars in the group


class EvalResult(TypedDict):
    """An evaluation on another dataset with the same classes (a protocol's ``eval_datasets``)."""

    loss: float
    top1: float
    top5: float
    num_samples: int
    split_hash: str


class _Reported(TypedDict):
    top1: float                          # held-out top-1, percent
    top5: float                          # held-out top-5, percent
    loss: float                          # held-out mean cross-entropy
    group_top1: dict[str, float] | None  # per-group held-out top-1 (Office-Home domains), else None
    params: int                          # trainable parameters (srm_models.complexity)
    macs: int                            # multiply-accumulates per image at the trial's image size
    train_time_s: float                  # training time, evaluation excluded
    param_groups: dict[str, ParamGroup]  # "decay" and, under a no_weight_decay rule, "no_decay"
    images_per_s: float                  # training images over training time
    peak_memory_mb: float                # CUDA: max allocated; CPU: process max RSS
    device: str                          # "cpu:2 threads", "cuda:NVIDIA H200"
    epochs: int
    iterations: int
    batch_size: int
    dataset_fingerprint: str
    split_hash: str
    split: str                           # "fold 0 of 5", "official"
    repeat: int                          # which repetition of k-fold CV the fold belongs to
    num_train: int
    num_eval: int
    protocol: dict[str, Any]             # the protocol with overrides (Protocol.to_dict())
    protocol_hash: str
    content_hash: str                    # TrialSpec.content_hash: what reuse matches on
    code_version: str
    resumed_from_epoch: int
    history: list[dict[str, float]]      # per-epoch metrics: epoch, train_loss, train_acc, val_top1, ...
    extra_evals: dict[str, EvalResult]


class TrialResult(_Reported, total=False):
    checkpoint_path: str | None  # the final checkpoint, where the trial wrote one (not sent over Ray)
    ray_node_id: str             # the Ray node that ran it, added on the worker under Ray
    mlflow_run_id: str | None    # the trial's MLflow run, added by the experiment's driver
    weights_uri: str | None      # where its final weights are kept (workers.weights), added by the driver


REPORTED_KEYS = frozenset(_Reported.__annotations__)
