"""Where a trial's batches come from: an in-memory uint8 tensor, or files streamed by DataLoader workers.

Both yield normalised float batches on the training device, so the loop does not care which.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from torchvision.transforms import v2

from .data.augment import DeviceAugment
from .data.base import LoadedDataset
from .data.images import ImageFiles, square
from .protocols import Protocol

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # images, labels, sample indices


class InMemoryBatches:
    """The dataset lives on the device as uint8; batches are gathered and augmented there."""

    def __init__(self, data: LoadedDataset, augment: DeviceAugment, device: torch.device):
        self.images = data.images.to(device)
        self.labels = torch.as_tensor(data.labels, device=device)
        self.augment, self.device = augment, device

    def train(self, order: torch.Tensor, batch_size: int, steps: int, epoch_seed: int) -> Iterator[Batch]:
        generator = torch.Generator(device=self.device).manual_seed(epoch_seed)
        order = order.to(self.device)
        for step in range(steps):
            chosen = order[step * batch_size:(step + 1) * batch_size]
            yield self.augment.train(self.images[chosen], generator), self.labels[chosen], chosen

    def eval(self, indices: np.ndarray, batch_size: int) -> Iterator[Batch]:
        indices = torch.as_tensor(indices, device=self.device)
        for start in range(0, len(indices), batch_size):
            chosen = indices[start:start + batch_size]
            yield self.augment.eval(self.images[chosen]), self.labels[chosen], chosen


class OrderSampler(Sampler):
    """Yields whatever index order it was last given: one DataLoader, with persistent
    workers, serves every epoch (starting worker processes per epoch costs seconds)."""

    def __init__(self) -> None:
        self.indices: list[int] = []

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class StreamingBatches:
    """Files decoded and cropped by DataLoader workers (uint8), normalised on the device.

    Data order follows the trial's seeded order; the random crops are drawn in the workers,
    from seeds fixed at their start, so a resumed trial sees the same order but other crops.
    """

    def __init__(self, data: LoadedDataset, augment: DeviceAugment, device: torch.device, protocol: Protocol):
        stored, size = protocol.stored_size(), protocol.image_size
        if augment.mode == "random_resized_crop":
            crop = [v2.RandomResizedCrop(size, antialias=True)]
        elif augment.mode == "crop":
            crop = [square(stored), v2.RandomCrop(size, padding=protocol.padding)]
        else:
            crop = [square(stored), v2.CenterCrop(size)]
        flip = [v2.RandomHorizontalFlip()] if augment.flip else []
        self.augment, self.device = augment, device
        self.train_order, self.eval_order = OrderSampler(), OrderSampler()
        self.batch_size = protocol.batch_size
        workers = protocol.num_workers
        options = dict(num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                       prefetch_factor=4 if workers else None)
        self.train_options = dict(options, sampler=self.train_order, generator=torch.Generator().manual_seed(0))
        self.train_loader = DataLoader(ImageFiles(data.index.files, data.labels, v2.Compose(crop + flip)),
                                       batch_size=protocol.batch_size, **self.train_options)
        self.eval_loader = DataLoader(ImageFiles(data.index.files, data.labels,
                                                 v2.Compose([square(stored), v2.CenterCrop(size)])),
                                      sampler=self.eval_order, batch_size=protocol.batch_size * 2, **options)

    def train(self, order: torch.Tensor, batch_size: int, steps: int, epoch_seed: int) -> Iterator[Batch]:
        if batch_size != self.train_loader.batch_size:  # a training split smaller than the batch size
            self.train_loader = DataLoader(self.train_loader.dataset, batch_size=batch_size, **self.train_options)
        torch.manual_seed(epoch_seed)  # the transforms draw from the global RNG when there are no workers
        self.train_order.indices = order[:steps * batch_size].tolist()
        for images, labels in self.train_loader:
            yield self.augment.finish(images.to(self.device, non_blocking=True)), \
                labels.to(self.device, non_blocking=True), None

    def eval(self, indices: np.ndarray, batch_size: int) -> Iterator[Batch]:
        self.eval_order.indices = [int(i) for i in indices]
        start = 0
        for images, labels in self.eval_loader:
            chosen = torch.as_tensor(indices[start:start + len(labels)])
            start += len(labels)
            yield self.augment.finish(images.to(self.device, non_blocking=True)), labels.to(self.device), chosen
