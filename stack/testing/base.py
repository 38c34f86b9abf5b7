"""What every role suite shares: declared capabilities, skipping what they exclude, and holding
the adapter to the protocols its capabilities promise."""

from __future__ import annotations

from typing import ClassVar

import pytest

from stack.contract.capabilities import Capability
from stack.plugins.capabilities import missing_methods


class RoleSuite:
    """Set `capabilities` to what the adapter's manifest declares for the role."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    def require(self, capability: Capability) -> None:
        """Skip the calling test unless the adapter declares `capability`."""
        if capability not in self.capabilities:
            pytest.skip(f"adapter does not declare the {capability.value!r} capability")

    def check_declared(self, adapter: object) -> None:
        """Fail unless `adapter` has the methods of every protocol its capabilities promise."""
        gaps = {
            capability.value: missing
            for capability in sorted(self.capabilities)
            if (missing := missing_methods(adapter, capability))
        }
        assert not gaps, f"{type(adapter).__name__} declares capabilities it lacks: {gaps}"
