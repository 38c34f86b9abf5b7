"""mlstack: one lifecycle over the MLOps tools teams already trust.

Importing this package is cheap on purpose: it imports no wrapped tool (MLflow, Feast,
BentoML, …) and not even pydantic or SQLAlchemy. Those load when a role, a config file or
the spine store is first used, so `mlstack --help` starts in a fraction of a second.
"""

from stack.telemetry import disable_wrapped_tool_telemetry

__version__ = "0.1.0"

# Before any adapter can import its tool, so their analytics never phone home by default.
disable_wrapped_tool_telemetry()

__all__ = ["__version__"]
