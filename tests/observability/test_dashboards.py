"""The Grafana dashboards shipped in the repository: importable JSON, and no panel queries a
metric that nothing exports (Prometheus itself parses every query in test_prometheus.py)."""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from tests.observability.catalogue import exported_series

FOLDER = Path(str(files("stack.observability").joinpath("dashboards")))
DASHBOARDS = sorted(FOLDER.glob("*.json"))


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel target and templating query."""
    found = [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append((f"${variable['name']}", variable["query"]["query"]))
    return found


def test_the_shipped_dashboards() -> None:
    assert {path.stem for path in DASHBOARDS} >= {"endpoints", "rollouts", "monitoring"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_queries_only_metrics_that_exist(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"].startswith("mlstack-") and dashboard["title"].startswith("mlstack / ")
    assert dashboard["panels"], path.name
    exported = exported_series()
    for title, expr in queries(dashboard):
        named = set(re.findall(r"\bmlstack_[a-z_]+\b", expr))
        assert named, f"{path.name}: {title}: queries no mlstack metric"
        assert named <= exported, f"{path.name}: {title}: nothing exports {named - exported}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panels_have_ids_and_targets_have_ref_ids(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
