"""The `rxledger` console entry."""

from __future__ import annotations

from node.cli import main

__all__ = ["main"]
