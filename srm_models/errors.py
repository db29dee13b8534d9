"""Errors raised for bad model names and arguments; their messages list what is valid."""
from __future__ import annotations

from collections.abc import Iterable


def _listing(valid: Iterable[str]) -> str:
    return ", ".join(sorted(valid))


class UnknownModelError(ValueError):
    """A model name that the registry does not know."""

    def __init__(self, name: str, valid: Iterable[str]) -> None:
        self.name = name
        self.valid = sorted(valid)
        super().__init__(f"unknown model {name!r}; valid models: {_listing(self.valid)}")


class InvalidArgumentError(ValueError):
    """An argument that is unknown, out of range, or meaningless for the thing being built."""
