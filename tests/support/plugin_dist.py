"""Build a third-party adapter distribution on disk, found through its real entry point.

It is exactly what `pip install mlstack-acme` would leave in site-packages: a dist-info with
entry_points.txt, a light manifest module, and an implementation that imports a "heavy" tool.
The heavy tool writes a marker file when imported, so tests can prove it was not.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

MANIFEST = """
from stack.contract.roles import Role
from stack.plugins.manifest import AdapterManifest, RoleBinding

MANIFEST = AdapterManifest(
    name="acme",
    package="mlstack-acme",
    description="Acme tracking",
    roles={
        Role.TRACKER: RoleBinding(
            implementation="stack_acme.tracker:AcmeTracker",
            config="stack_acme.config:AcmeConfig",
            capabilities=frozenset({"datasets", "artifacts"}),
        ),
        Role.MONITOR: RoleBinding(
            implementation="stack_acme.monitor:AcmeMonitor",
            capabilities=frozenset({"html_report"}),
        ),
    },
)
"""

CONFIG = """
from pydantic import BaseModel, ConfigDict, SecretStr

class AcmeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    endpoint: str
    token: SecretStr | None = None
    retries: int = 3
"""

HEAVY = """
import os
from pathlib import Path
Path(os.environ["ACME_MARKER"]).write_text("imported")
"""

TRACKER = """
import acme_heavy_tool  # the wrapped tool: must load only when the role is used
from tests.support.memory import MemoryTracker

class AcmeTracker(MemoryTracker):
    def __init__(self, config, context):
        super().__init__(None, context)
        self.config = config
"""

MONITOR = """
import acme_tool_that_is_not_installed
"""


def build_acme_distribution(site: Path) -> Path:
    dist = site / "mlstack_acme-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mlstack-acme\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[mlstack.adapters]\nacme = stack_acme.manifest:MANIFEST\n"
        "broken = stack_acme.missing_module:MANIFEST\n"
    )
    package = site / "stack_acme"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, text in {
        "manifest": MANIFEST,
        "config": CONFIG,
        "tracker": TRACKER,
        "monitor": MONITOR,
    }.items():
        (package / f"{name}.py").write_text(dedent(text))
    (site / "acme_heavy_tool.py").write_text(dedent(HEAVY))
    return site
