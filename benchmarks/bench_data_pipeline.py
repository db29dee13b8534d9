"""Data-pipeline overhead of a trial: training steps fed by the pipeline vs pre-made device tensors.

The pipeline path is the trial's own batch source (``workers.batches``): with
``--source memory`` it gathers a batch from the uint8 dataset on the device, pad-crops,
flips and normalises there; with ``--source files`` DataLoader workers decode and crop PNG
files and the device normalises. Then the same forward/backward/SGD step (channels_last +
bf16 autocast on CUDA). The reference path runs the same
step on one normalised batch made once, already on the device. Both are timed with
torch.utils.benchmark in alternating rounds of one process, so machine noise hits both.

    python benchmarks/bench_data_pipeline.py --threads 1            # CPU, cifar_resnet20 on textures
    python benchmarks/bench_data_pipeline.py --device cuda --batch-size 256 --image-size 32

Overhead = pipeline time per step / reference time per step - 1 (target: <= 10% GPU, 20% CPU).
"""
from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import tempfile
from pathlib import Path

import torch
from PIL import Image
from torch.nn import functional as F
from torch.utils.benchmark import Timer

from srm_models import create_model, model_name, variant_kinds
from workers.batches import InMemoryBatches, StreamingBatches
from workers.data import load_dataset
from workers.data.augment import DeviceAugment
from workers.protocols import get_protocol


def write_image_folder(root: Path, images: torch.Tensor, labels) -> None:
    """The generated images as PNG files in an ImageFolder tree, for the streaming path."""
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / f"class{int(label)}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")


def endless_batches(batches, n_train: int, batch_size: int):
    """The trial's own batch source, epoch after epoch (a new shuffled order each time)."""
    for epoch in itertools.count():
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(epoch))
        yield from batches.train(order, batch_size, n_train // batch_size, epoch)


def build(args, scratch: Path):
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    on_cuda = device.type == "cuda"
    protocol = get_protocol("cifar", {"image_size": args.image_size, "batch_size": args.batch_size,
                                      "num_workers": args.workers, "channels_last": on_cuda})
    dataset = f"textures[n_per_class={args.per_class},image_size={args.image_size}]"
    data = load_dataset(dataset, scratch, size=protocol.stored_size())
    augment = DeviceAugment(protocol.augment, protocol.image_size, protocol.padding, protocol.flip,
                            data.mean, data.std, device, channels_last=on_cuda)
    fixed_idx = torch.arange(args.batch_size) % len(data)
    fixed_images = augment.eval(data.images[fixed_idx].to(device))
    fixed_labels = torch.as_tensor(data.labels[fixed_idx.numpy()], device=device)
    if args.source == "files":
        write_image_folder(scratch / "bench", data.images, data.labels)
        data = load_dataset("imagefolder:bench", scratch, size=protocol.stored_size(), in_memory="never")
        batches = StreamingBatches(data, augment, device, protocol)
    else:
        batches = InMemoryBatches(data, augment, device)
    stream = endless_batches(batches, len(data), args.batch_size)

    model = create_model(model_name(args.variant, args.model), num_classes=data.num_classes,
                         input_size=args.image_size).to(
        device, memory_format=torch.channels_last if on_cuda else torch.preserve_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_cuda)  # noqa: E731

    def step(images, labels):
        with autocast():
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def pipeline_step():
        images, labels, _ = next(stream)
        step(images, labels)

    def premade_step():
        step(fixed_images, fixed_labels)

    def batch_only():
        return next(stream)

    return device, pipeline_step, premade_step, batch_only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="cifar_resnet20")
    parser.add_argument("--variant", default="srm", choices=variant_kinds())
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--source", default="memory", choices=["memory", "files"],
                        help="memory: uint8 tensor on the device (CIFAR-sized sets); files: PNGs "
                             "streamed by DataLoader workers (ImageNet-sized sets)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for --source files")
    parser.add_argument("--per-class", type=int, default=128, help="textures images per class (8 classes)")
    parser.add_argument("--rounds", type=int, default=15, help="alternating measurements of each path")
    parser.add_argument("--steps", type=int, default=2, help="training steps per measurement")
    parser.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="bench-data-"))
    device, pipeline_step, premade_step, batch_only = build(args, scratch)
    for _ in range(2):  # warm-up: allocator, kernels, autotuning
        pipeline_step()
        premade_step()
    timers = {"pipeline": Timer("f()", globals={"f": pipeline_step}),
              "premade": Timer("f()", globals={"f": premade_step}),
              "batch": Timer("f()", globals={"f": batch_only})}
    per_step = {key: [] for key in timers}
    for _ in range(args.rounds):  # alternate, so a busy moment of the machine hits all paths
        for key, timer in timers.items():
            per_step[key].append(timer.timeit(args.steps).median)
    pipeline, premade, batch = (statistics.median(per_step[k]) for k in ("pipeline", "premade", "batch"))
    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"source={args.source} device={device} threads={threads} model={args.variant}_{args.model} "
          f"batch={args.batch_size} image={args.image_size} rounds={args.rounds}")
    print(f"pre-made tensors : {args.batch_size / premade:9.1f} images/s  ({premade * 1e3:.2f} ms/step)")
    print(f"data pipeline    : {args.batch_size / pipeline:9.1f} images/s  ({pipeline * 1e3:.2f} ms/step)")
    print(f"batch making only: {batch * 1e3:.2f} ms/batch = {100 * batch / premade:.1f}% of a pre-made step")
    print(f"pipeline overhead: {100 * (pipeline / premade - 1):+.1f}% (median step time ratio; "
          f"per-round ratios {min(p / q for p, q in zip(per_step['pipeline'], per_step['premade'], strict=True)):.2f}"
          f"..{max(p / q for p, q in zip(per_step['pipeline'], per_step['premade'], strict=True)):.2f})")


if __name__ == "__main__":
    main()
