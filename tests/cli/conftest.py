from __future__ import annotations

from tests.support.cli import MLSTACK, ROOT, Cli

__all__ = ["MLSTACK", "ROOT", "Cli"]
