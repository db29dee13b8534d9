"""Style-transfer jobs (paper Sec. 4.3) in the service: their specs, results, leaderboard and plots."""
from __future__ import annotations

from typing import Any

STYLE_TRANSFER = "style_transfer"


def is_style_job(job: Any) -> bool:
    """Whether a job (a Job row or any row with its ``spec``) is a style-transfer job."""
    return ((getattr(job, "spec", None) or {}).get("task")) == STYLE_TRANSFER
