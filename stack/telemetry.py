"""Project defaults that keep the wrapped tools' analytics on the user's machine.

Each tool reads its own opt-out variable when it is imported, so these are set before any
adapter loads its tool. They are defaults: a user who exports a value keeps it.
"""

import os

TELEMETRY_OPT_OUTS: dict[str, str] = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "ZENML_ANALYTICS_OPT_IN": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "FEAST_USAGE": "False",
}


def disable_wrapped_tool_telemetry() -> None:
    """Set every wrapped tool's analytics opt-out unless the user already chose a value."""
    for name, value in TELEMETRY_OPT_OUTS.items():
        os.environ.setdefault(name, value)
