"""Streamed batches: a loader rebuilt for a smaller batch keeps the options of the first one."""
from __future__ import annotations

import torch

from tests.workers import layouts
from workers.batches import StreamingBatches
from workers.data import load_dataset
from workers.data.augment import DeviceAugment
from workers.protocols import get_protocol


def test_a_rebuilt_training_loader_keeps_workers_prefetch_and_generator(data_dir):
    layouts.write_class_tree(data_dir / "mine", ["a", "b"], 4)
    protocol = get_protocol("quick", {"num_workers": 1, "batch_size": 8, "image_size": 16})
    data = load_dataset("imagefolder:mine", data_dir, size=protocol.stored_size(), in_memory="never", num_workers=1)
    device = torch.device("cpu")
    augment = DeviceAugment(protocol.augment, protocol.image_size, protocol.padding, protocol.flip, data.mean,
                            data.std, device)
    batches = StreamingBatches(data, augment, device, protocol)
    first = batches.train_loader
    images = [len(labels) for _, labels, _ in batches.train(torch.arange(8), 3, 2, epoch_seed=1)]
    rebuilt = batches.train_loader
    assert rebuilt is not first and rebuilt.batch_size == 3 and images == [3, 3]
    assert (rebuilt.num_workers, rebuilt.persistent_workers, rebuilt.prefetch_factor, rebuilt.pin_memory) == (
        1, True, 4, False)
    assert rebuilt.generator is first.generator and rebuilt.sampler is first.sampler
