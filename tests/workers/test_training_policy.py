"""The protocol's optimizer settings reach the training loop: LR schedule per iteration, momentum,
Nesterov, and label smoothing in the loss (each checked against values worked out here)."""
from __future__ import annotations

import contextlib
import math

import pytest
import torch
from torch import nn

from workers.protocols import get_protocol
from workers.trial import Progress, make_optimizer, make_scheduler, train_epoch


def _lrs(protocol_name: str, overrides: dict, total_steps: int) -> list[float]:
    protocol = get_protocol(protocol_name, overrides)
    optimizer = make_optimizer(nn.Linear(2, 2), protocol)
    scheduler = make_scheduler(optimizer, protocol, total_steps)
    lrs = []
    for _ in range(total_steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_step_schedule_divides_by_ten_at_half_and_three_quarters():
    # CIFAR: lr 0.2, /10 at 32k and 48k of 64k iterations -> at steps 4 and 6 of 8
    assert _lrs("cifar", {"iterations": 8}, 8) == pytest.approx([0.2] * 4 + [0.02] * 2 + [0.002] * 2)


def test_cosine_schedule():
    expected = [0.05 * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(10)]
    assert _lrs("quick", {}, 10) == pytest.approx(expected)


def test_constant_schedule_and_sgd_settings():
    assert _lrs("quick", {"lr_schedule": "constant", "lr": 0.3}, 5) == pytest.approx([0.3] * 5)
    optimizer = make_optimizer(nn.Linear(2, 2), get_protocol("quick", {"momentum": 0.8, "nesterov": True}))
    group = optimizer.param_groups[0]
    assert (group["momentum"], group["nesterov"], group["lr"]) == (0.8, True, 0.05)


def test_label_smoothing_is_in_the_training_loss():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
    images, labels = torch.randn(6, 3, 2, 2), torch.tensor([0, 1, 2, 3, 0, 1])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    with torch.no_grad():
        log_p = torch.log_softmax(model(images), dim=1)
    eps = 0.2  # (1 - eps) * NLL of the label + eps * mean over classes of -log p
    expected = ((1 - eps) * -log_p[torch.arange(6), labels] + eps * -log_p.mean(dim=1)).mean()
    loss, _, seen, _ = train_epoch(model, optimizer, scheduler, [(images, labels, None)], contextlib.nullcontext,
                                   eps, Progress(False, 1, "test"))
    assert seen == 6 and loss == pytest.approx(float(expected), rel=1e-5)
