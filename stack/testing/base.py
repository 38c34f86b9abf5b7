"""What every role suite shares: declared capabilities and skipping what they exclude."""

from __future__ import annotations

from typing import ClassVar

import pytest


class RoleSuite:
    """Set `capabilities` to what the adapter's manifest declares for the role."""

    capabilities: ClassVar[frozenset[str]] = frozenset()

    def require(self, capability: str) -> None:
        """Skip the calling test unless the adapter declares `capability`."""
        if capability not in self.capabilities:
            pytest.skip(f"adapter does not declare the {capability!r} capability")
