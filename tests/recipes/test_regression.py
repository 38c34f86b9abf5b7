"""The regression recipe end to end: its gate in regression terms (a worse RMSE is refused),
served, and monitored with MAE once real delivery times come back through /feedback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import mlflow

from stack.session import StackSession
from tests.recipes.conftest import copy_recipe
from tests.support.cli import cli_in


def test_regression_recipe_gate_serving_and_monitoring(tmp_path: Path) -> None:
    copy_recipe("regression", tmp_path)
    cli = cli_in(tmp_path)
    first = cli("run", "regression", check=True).stdout
    assert "delivery-time@1 is now serving" in first

    # a much more regularised model has a worse RMSE: the serving gate refuses it
    recipe = tmp_path / "regression" / "recipe.yaml"
    recipe.write_text(recipe.read_text().replace("alpha: 1.0", "alpha: 1000.0"))
    second = cli("run", "regression", check=True).stdout
    assert "delivery-time@2 stays approved" in second
    assert "FAIL" in second and "rmse" in second

    with StackSession.open(tmp_path / "stack.yaml", base_dir=tmp_path) as session:
        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{session.home / 'mlflow.db'}")
        served = client.get_model_version_by_alias("delivery-time", "serving")
        assert int(served.version) == 1
        run = client.get_run(served.run_id)
        assert run.data.metrics["rmse"] < 8.0 and run.data.metrics["r2"] > 0.6

    deployed = cli("deploy", "delivery-time@serving", "--strategy", "direct", check=True)
    url = deployed.stdout.split(" on ")[1].split()[0]
    try:
        with httpx.Client(timeout=10) as http:
            for i in range(60):
                order = {
                    "distance_km": 1.0 + (i % 7),
                    "items": float(1 + i % 5),
                    "rush_hour": float(i % 2),
                    "rain": 0.0,
                }
                answer = http.post(f"{url}/predict", json=order, headers={"x-request-id": f"o{i}"})
                assert answer.status_code == 200
                minutes = (
                    12 + 4.2 * order["distance_km"] + 0.8 * order["items"] + 6 * order["rush_hour"]
                )
                feedback = http.post(
                    f"{url}/feedback", json={"request_id": f"o{i}", "label": minutes}
                )
                assert feedback.status_code == 202
        time.sleep(1.5)  # the log is flushed off the request path
        checked = cli("monitor", "run", "delivery-time", "--recipe", "regression", "--json")
        assert checked.returncode in (0, 3), checked.stderr
        [record] = [json.loads(line) for line in checked.stdout.splitlines()]
        performance = record["performance"]
        assert performance["sufficient"] and performance["labelled_rows"] == 60
        assert set(performance["metrics"]) == {"mae", "rmse", "r2"}
        assert performance["metrics"]["mae"] < 3.0  # the model is good on noise-free times
    finally:
        cli("undeploy", "delivery-time")
