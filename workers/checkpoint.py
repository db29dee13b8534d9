"""A trial's end-of-epoch checkpoint: model, optimizer, scheduler, RNG states and history."""
from __future__ import annotations

import os
from pathlib import Path

import torch

CHECKPOINT_FILE = "last.pt"


def save_checkpoint(directory: Path, state: dict) -> Path:
    """Written to a temporary name and renamed, so a crash mid-write leaves the previous one."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CHECKPOINT_FILE
    partial = directory / (CHECKPOINT_FILE + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)
    return path


def load_checkpoint(directory: Path | None) -> dict | None:
    if directory is None or not (Path(directory) / CHECKPOINT_FILE).is_file():
        return None
    return torch.load(Path(directory) / CHECKPOINT_FILE, map_location="cpu", weights_only=False)


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
