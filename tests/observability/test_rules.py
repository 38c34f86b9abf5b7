"""The shipped alerting rules: valid for Prometheus' own checker, and every metric they name
is one mlstack exports."""

from __future__ import annotations

import re
import subprocess
from importlib.resources import files
from pathlib import Path

import yaml

from tests.observability.catalogue import exported_series
from tests.support.prometheus import binary

RULES = Path(str(files("stack.observability").joinpath("rules.yml")))


def test_promtool_accepts_the_shipped_rules() -> None:
    promtool = binary("promtool")
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout


def test_every_rule_names_only_exported_metrics() -> None:
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            named = set(re.findall(r"\bmlstack_[a-z_]+", rule["expr"]))
            assert named, rule["alert"]
            assert named <= exported_series(), (rule["alert"], named - exported_series())
