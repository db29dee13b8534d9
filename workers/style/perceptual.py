"""The loss network: VGG-16's convolutional features up to relu4_3 (torchvision's architecture).

Weights come from torchvision's VGG-16 state dict, which the user puts in the data dir (nothing is
downloaded), or from a seeded random initialisation, the same for every variant and trial (smoke runs,
tests, the demo). The four outputs are relu1_2, relu2_2, relu3_3 and relu4_3.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

DEFAULT_WEIGHTS = "weights/vgg16.pth"
RANDOM_SEED = 0
LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
SLICE_ENDS = (4, 9, 16, 23)  # torchvision vgg16().features indices after each of LAYERS


class PerceptualNetError(ValueError):
    """A weights file that is missing, unreadable or does not fit VGG-16's features."""


def _vgg16_features() -> nn.Sequential:
    from torchvision.models import vgg16

    return vgg16(weights=None).features[:SLICE_ENDS[-1]]


def _feature_state(state: dict) -> dict[str, torch.Tensor]:
    """The ``features.*`` tensors of a torchvision VGG-16 state dict (or of a features-only one)."""
    if any(k.startswith("features.") for k in state):
        state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    return {k: v for k, v in state.items() if int(k.split(".")[0]) < SLICE_ENDS[-1]}


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """The features' tensors from ``path``, checked against VGG-16's shapes (PerceptualNetError if not)."""
    if not path.is_file():
        raise PerceptualNetError(f"no VGG-16 weights at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise PerceptualNetError(f"{path} is not a readable torch state dict: {error}") from error
    if isinstance(state, nn.Module):
        state = state.state_dict()
    if not isinstance(state, dict):
        raise PerceptualNetError(f"{path} holds a {type(state).__name__}, not a state dict")
    try:
        features = _feature_state(state)
    except ValueError as error:
        raise PerceptualNetError(f"{path} is not a torchvision VGG-16 state dict (key {error})") from error
    expected = _vgg16_features().state_dict()
    missing = sorted(set(expected) - set(features))
    if missing:
        raise PerceptualNetError(f"{path} lacks VGG-16 tensors features.{missing[0]} (and {len(missing) - 1} more); "
                                 "give torchvision's vgg16 state dict")
    for key, tensor in expected.items():
        if tuple(features[key].shape) != tuple(tensor.shape):
            raise PerceptualNetError(f"{path}: features.{key} has shape {tuple(features[key].shape)}, VGG-16 needs "
                                     f"{tuple(tensor.shape)}")
    return {k: features[k] for k in expected}


def weights_digest(path: Path) -> str:
    """sha256 of the weights file: part of a trial's identity."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class PerceptualNet(nn.Module):
    """Frozen VGG-16 features; ``forward`` returns the four style layers' activations in order."""

    def __init__(self, weights: dict[str, torch.Tensor] | None = None):
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # a random net is the same everywhere; callers' RNG untouched
            torch.manual_seed(RANDOM_SEED)
            features = _vgg16_features()
        if weights is not None:
            features.load_state_dict(weights)
        starts = (0, *SLICE_ENDS[:-1])
        self.slices = nn.ModuleList(features[a:b] for a, b in zip(starts, SLICE_ENDS, strict=True))
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # always in eval mode: a fixed loss network
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for block in self.slices:
            x = block(x)
            outputs.append(x)
        return outputs


def describe_perceptual(kind: str, data_dir: Path, path: str | None = None) -> str:
    """Which net a trial uses, as results and MLflow show it (and its content hash includes): ``random (seed 0)``
    or ``vgg16 (<file>, sha256 <first 12>)``. Checks the weights file fits VGG-16 (PerceptualNetError if not)."""
    if kind == "random":
        if path:
            raise PerceptualNetError("perceptual_net_path is only for perceptual_net vgg16; leave it out with random")
        return f"random (seed {RANDOM_SEED})"
    if kind != "vgg16":
        raise PerceptualNetError(f"perceptual_net must be vgg16 or random; got {kind!r}")
    file = Path(data_dir) / (path or DEFAULT_WEIGHTS)
    load_weights(file)
    return f"vgg16 ({path or DEFAULT_WEIGHTS}, sha256 {weights_digest(file)[:12]})"


def build_perceptual_net(kind: str, data_dir: Path, path: str | None = None) -> tuple[PerceptualNet, str]:
    """(net, description): ``vgg16`` from ``path`` (relative to the data dir; default weights/vgg16.pth) or
    ``random`` (seeded); see describe_perceptual."""
    description = describe_perceptual(kind, data_dir, path)
    if kind == "random":
        return PerceptualNet(), description
    return PerceptualNet(load_weights(Path(data_dir) / (path or DEFAULT_WEIGHTS))), description
