"""The per-variant numbers the dispatcher copies onto MLflow's summary runs."""
from __future__ import annotations

import pytest

from service.mlflow_sync import comparisons
from service.results import variant_rows
from tests.service.factories import finished_job


def test_comparisons_hold_fold_count_and_paired_gain(sessions):
    with sessions() as session:
        job = finished_job(session, {"baseline": [60.0, 62.0, 61.0], "srm": [63.0, 62.5, 64.0]})
        found = comparisons(job.trials)
        gain = {row["variant"]: row["gain"] for row in variant_rows(job.trials)}["srm"]
    assert found["baseline"] == {"n_folds": 3}  # no gain over itself
    assert found["srm"]["n_folds"] == 3
    assert found["srm"]["gain_top1"] == pytest.approx((3.0 + 0.5 + 3.0) / 3)  # per-fold differences by hand
    # The verdict numbers are copied when the results compute them, and never made up when they don't.
    assert found["srm"].get("corrected_t_pvalue") == gain.get("corrected_t_pvalue")
    assert found["srm"].get("p_better") == (gain.get("bayes") or {}).get("p_better")
