"""The bodies of the results and leaderboard routes, typed for the OpenAPI document.

The routes build these bodies as plain dicts (service.results) and send them as they are, so
the hot paths skip a model round trip; the models say what the keys are, schemathesis checks
every answer against them, and tests validate real bodies with them.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Number = float | None


class BayesTest(BaseModel):
    p_better: float
    p_equivalent: float
    p_worse: float
    rope: float = Field(description="region of practical equivalence, top-1 points")


class Gain(BaseModel):
    """A variant minus the baseline, paired on (repeat, fold, seed): secondary paired tests, the
    corrected resampled t-test, the Bayesian correlated t-test and the verdict."""

    model_config = ConfigDict(extra="allow")
    n_pairs: int
    gain_mean: Number
    gain_std: Number
    t_statistic: Number = None
    t_pvalue: Number = None
    wilcoxon_statistic: Number = None
    wilcoxon_pvalue: Number = None
    min_wilcoxon_pvalue: Number = None
    note: str | None = None
    corrected_t_statistic: Number = None
    corrected_t_pvalue: Number = None
    corrected_ci95: list[Number] | None = None
    test_train_ratio: Number = None
    bayes: BayesTest | None = None
    verdict: str = Field(description="better, equivalent, worse or undecided")
    secondary_note: str | None = None
    detectable_effect: Number = None
    verdict_note: str | None = None


class TrialKey(BaseModel):
    repeat: int
    fold: int | None
    seed: int


class VariantRow(BaseModel):
    variant: str
    n_trials: int
    n_succeeded: int
    n_folds: int
    top1_mean: Number
    top1_std: Number
    top1_ci95: list[Number]
    top5_mean: Number
    top5_std: Number
    top5_ci95: list[Number]
    group_top1: dict[str, Number] | None
    params: int | None
    macs: int | None
    images_per_s: Number
    incomplete: bool
    missing: list[TrialKey] = Field(description="(repeat, fold, seed) keys without a paired result")
    gain: Gain | None = Field(description="against the baseline; null for the baseline itself")


class FoldRow(BaseModel):
    variant: str
    repeat: int
    fold: int | None
    seed: int
    status: str
    top1: Number
    top5: Number
    num_train: int | None
    num_eval: int | None
    group_top1: dict[str, Number] | None
    reused: bool
    device: str | None
    train_time_s: Number
    images_per_s: Number
    mlflow_run_id: str | None
    error: str | None


class Design(BaseModel):
    folds: int
    repeats: int
    seeds: int


class JobResults(BaseModel):
    """GET /v1/jobs/{id}/results?format=json: per-variant cross-validation results (percent)."""

    job_id: str
    status: str
    dataset: str
    backbone: str
    protocol: str
    protocol_hash: str
    rope: float
    n_trials: int
    n_folds: int
    metric_note: str
    test_note: str
    rows: list[VariantRow]
    folds: list[FoldRow]
    design: Design


class VersusBest(BaseModel):
    n_pairs: int
    gain_mean: Number
    corrected_t_pvalue: Number


class LeaderboardRow(BaseModel):
    variant: str
    n_jobs: int
    n_trials: int
    top1_mean: Number
    top1_std: Number
    top5_mean: Number
    top5_std: Number
    params: int | None
    macs: int | None
    images_per_s: Number
    rank: int
    tie_group: int = Field(description="1: the best and every variant the corrected test cannot tell from it")
    vs_best: VersusBest | None = Field(description="the corrected test against the board's best; null for it")


class LeaderboardBoard(BaseModel):
    """One (dataset, backbone, protocol hash): its variants pooled over finished jobs, best first."""

    dataset: str
    backbone: str
    protocol: str
    protocol_hash: str
    rows: list[LeaderboardRow]
    n_jobs: int


class StyleResults(BaseModel):
    """A style-transfer job's results (docs/style-transfer.md): per variant the final losses over seeds
    and the paired comparison of each against ``bn``."""

    model_config = ConfigDict(extra="allow")
    job_id: str
    task: str = Field(description="style_transfer")
    status: str
    dataset: str
    protocol: str
    protocol_hash: str
    n_trials: int
    seeds: list[int]
    rows: list[dict]
    trials: list[dict]


class StyleLeaderboardBoard(BaseModel):
    """One (content, style image, perceptual net, placement, protocol hash): variants by final total loss."""

    model_config = ConfigDict(extra="allow")
    task: str = Field(description="style_transfer")
    dataset: str
    protocol: str
    protocol_hash: str
    rows: list[dict]
    n_jobs: int
    ranked_by: str
