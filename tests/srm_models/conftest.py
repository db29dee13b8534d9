"""Fixtures for the srm_models tests."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def seeded_torch():
    """Every test draws the same random inputs on every run, so a tolerance failure reproduces."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def one_intra_op_thread():
    """Run each test on one intra-op thread, then restore the setting.

    The tests push tiny batches through many layers; splitting such small ops across OpenMP
    threads gains nothing, and on a shared 2-core machine the waiting threads made a
    forward+backward of ResNet-152 at 32x32 ~20x slower (10 s vs 0.5 s of CPU).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
