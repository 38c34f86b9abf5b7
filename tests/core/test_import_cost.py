"""`import stack` and `mlstack --help` import no wrapped tool (and nothing heavy at all)."""

from __future__ import annotations

import json
import subprocess
import sys

WRAPPED_TOOLS = {
    "mlflow",
    "feast",
    "bentoml",
    "evidently",
    "zenml",
    "prefect",
    "kfp",
    "pulumi",
    "sklearn",
    "pandas",
    "numpy",
    "torch",
}
# Not wrapped tools, but slow enough that start-up must not pay for them either.
HEAVY_FOR_STARTUP = {"pydantic", "sqlalchemy", "alembic", "yaml", "rich", "pluggy"}

PROBE = """
import json, sys
{body}
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


def loaded_after(body: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(body=body)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_import_stack_imports_no_wrapped_tool() -> None:
    loaded = loaded_after("import stack")
    assert not loaded & WRAPPED_TOOLS
    assert not loaded & HEAVY_FOR_STARTUP


def test_help_imports_no_wrapped_tool() -> None:
    body = """
from stack.cli.main import main
try:
    main(["--help"])
except SystemExit:
    pass
"""
    loaded = loaded_after(body)
    assert not loaded & WRAPPED_TOOLS
    assert not loaded & HEAVY_FOR_STARTUP


def test_listing_adapters_imports_no_wrapped_tool() -> None:
    body = """
import contextlib, io
from stack.cli.main import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(["adapters", "--json"])
    except SystemExit:
        pass
"""
    assert not loaded_after(body) & WRAPPED_TOOLS


def test_importing_stack_turns_off_the_tools_telemetry_by_default() -> None:
    body = """
import os
os.environ.pop("MLFLOW_DISABLE_TELEMETRY", None)
os.environ["BENTOML_DO_NOT_TRACK"] = "false"  # a user's own choice is kept
import stack
print(json.dumps([os.environ["MLFLOW_DISABLE_TELEMETRY"], os.environ["BENTOML_DO_NOT_TRACK"],
                  os.environ["ZENML_ANALYTICS_OPT_IN"]]))
"""
    result = subprocess.run(
        [sys.executable, "-c", "import json\n" + body], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == ["true", "false", "false"]
