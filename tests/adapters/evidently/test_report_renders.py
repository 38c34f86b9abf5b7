"""The Evidently HTML report a check saves opens in a real browser and shows the verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stack.contract.monitoring import ColumnPolicy
from stack.plugins.manifest import AdapterContext
from stack_evidently.monitor import EvidentlyMonitor
from tests.support.chromium import rendered_text


def test_the_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    monitor = EvidentlyMonitor(None, AdapterContext(home=tmp_path, base_dir=tmp_path))
    rng = np.random.default_rng(1)
    reference = pd.DataFrame({"stable": rng.normal(0, 1, 500), "moving": rng.normal(0, 1, 500)})
    current = pd.DataFrame({"stable": rng.normal(0, 1, 500), "moving": rng.normal(2, 1, 500)})
    page = tmp_path / "report.html"
    report = monitor.drift(
        reference,
        current,
        columns=[ColumnPolicy("stable"), ColumnPolicy("moving")],
        html_path=page,
    )
    assert report.drifted_columns == ("moving",)
    texts = rendered_text(page)
    # only the browser-rendered page has these: the file itself holds data and scripts
    assert "Drift is detected for 50.0% of columns (1 out of 2)." in texts
    assert "Drift is detected" not in page.read_text().split("<body", 1)[1].split("<script")[0]
    moving, stable = texts.index("moving"), texts.index("stable")
    assert texts[moving + 2] == "Detected"
    assert texts[stable + 2] == "Not Detected"
