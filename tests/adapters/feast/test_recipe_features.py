"""Feature definitions declared in a recipe (inline or as a Feast repo), planned then applied."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from textwrap import dedent

import pandas as pd
import pytest

from stack.config.recipe_file import load_recipe
from stack.errors import StackConfigError, StackError
from stack.features import apply_features, plan_features
from stack.plugins.manifest import AdapterContext
from stack.session import StackSession
from stack_feast.config import FeastConfig
from stack_feast.store import FeastFeatureStore
from tests.support.cli import Cli

T = datetime(2026, 1, 2, tzinfo=UTC)

INLINE = """
name: churn-features
features:
  entities:
    - {name: customer, join_keys: [customer_id], key_type: int64}
  sources:
    - {name: activity, path: data/activity.parquet}
  views:
    - name: activity_stats
      entities: [customer]
      source: activity
      ttl_days: 30
      features: {calls: CALLS_TYPE, spend: float64}
steps:
  - {name: noop, run: "steps:noop"}
"""


def write_recipe(folder: Path, calls_type: str = "int64") -> Path:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"customer_id": [1, 2], "event_timestamp": [T, T], "calls": [3, 4], "spend": [1.5, 2.5]}
    ).to_parquet(folder / "data" / "activity.parquet")
    (folder / "recipe.yaml").write_text(dedent(INLINE).replace("CALLS_TYPE", calls_type))
    (folder / "steps.py").write_text("def noop():\n    return None\n")
    return folder


def feast_views(workdir: Path) -> dict[str, dict[str, str]]:
    """The views in the embedded stack's Feast registry, read with Feast's own client."""
    feast = FeastFeatureStore(FeastConfig(), AdapterContext(workdir / ".mlstack", workdir)).store
    return {v.name: {f.name: str(f.dtype) for f in v.features} for v in feast.list_feature_views()}


def test_plan_shows_changes_and_apply_applies_them(cli: Cli, workdir: Path) -> None:
    write_recipe(workdir / "churn")

    planned = cli("features", "plan", "churn", check=True)
    assert "+ create view activity_stats" in planned.stdout
    session = StackSession.open(None)
    with session:
        assert session.features.plan(
            load_recipe(workdir / "churn").spec.features.definitions(workdir / "churn")  # type: ignore[union-attr]
        ).to_add == ("activity_stats",), "plan must not apply"

    applied = cli("features", "apply", "churn", check=True)
    assert "+ create view activity_stats" in applied.stdout
    assert "applied: 1 created" in applied.stdout
    assert feast_views(workdir) == {"activity_stats": {"calls": "Int64", "spend": "Float64"}}
    assert "No changes" in cli("features", "plan", "churn", check=True).stdout

    write_recipe(workdir / "churn", calls_type="string")
    refused = cli("features", "apply", "churn")
    assert refused.returncode == 1
    assert "feature 'calls' would change type Int64 -> String" in refused.stderr
    assert "nothing applied" in refused.stderr
    assert feast_views(workdir)["activity_stats"]["calls"] == "Int64"

    with StackSession.open(None) as session:
        actions = [e.action for e in session.spine.audit_entries()]
        assert actions.count("features.applied") == 1
        assert session.spine.verify_audit().ok

    loaded = cli("features", "materialize", "--end", "2026-01-03T00:00:00", check=True)
    assert "materialized 1 feature views" in loaded.stdout


def test_view_naming_an_undeclared_entity_points_at_the_line(tmp_path: Path) -> None:
    folder = write_recipe(tmp_path / "churn")
    text = (folder / "recipe.yaml").read_text().replace("entities: [customer]", "entities: [user]")
    (folder / "recipe.yaml").write_text(text)
    with pytest.raises(StackConfigError) as caught:
        load_recipe(folder)
    message = str(caught.value)
    assert "recipe.yaml:10" in message
    assert "view 'activity_stats' uses entity 'user', which is not declared" in message


FEAST_REPO = """
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
activity = FileSource(name="activity", path="activity.parquet", timestamp_field="event_timestamp")
activity_stats = FeatureView(
    name="activity_stats",
    entities=[customer],
    ttl=timedelta(days=30),
    schema=[Field(name="calls", dtype=Int64), Field(name="spend", dtype=Float64)],
    source=activity,
)
"""


def test_a_recipe_can_point_at_an_existing_feast_repo(workdir: Path) -> None:
    repo = workdir / "churn" / "feature_repo"
    repo.mkdir(parents=True)
    (repo / "definitions.py").write_text(FEAST_REPO)
    pd.DataFrame(
        {"customer_id": [1, 2], "event_timestamp": [T, T], "calls": [3, 4], "spend": [1.5, 2.5]}
    ).to_parquet(repo / "activity.parquet")
    (workdir / "churn" / "recipe.yaml").write_text(
        "name: churn\nfeatures: {repo: feature_repo}\nsteps:\n  - {name: a, run: 'steps:a'}\n"
    )
    recipe = load_recipe(workdir / "churn")
    with StackSession.open(None, recipe=recipe) as session:
        assert plan_features(session, recipe).to_add == ("activity_stats",)
        apply_features(session, recipe)
        session.features.materialize(T + timedelta(days=1), start=T - timedelta(days=1))
        [row] = session.features.online_features(
            ["activity_stats:calls", "activity_stats:spend"], [{"customer_id": 2}]
        )
    assert (row["calls"], row["spend"]) == (4, 2.5)


def test_a_feast_repo_with_what_mlstack_cannot_plan_is_refused_by_name(workdir: Path) -> None:
    repo = workdir / "churn" / "feature_repo"
    repo.mkdir(parents=True)
    (repo / "definitions.py").write_text(
        FEAST_REPO
        + "\nfrom feast import FeatureService\n"
        + "churn_service = FeatureService(name='churn_service', features=[activity_stats])\n"
    )
    pd.DataFrame(
        {"customer_id": [1], "event_timestamp": [T], "calls": [3], "spend": [1.5]}
    ).to_parquet(repo / "activity.parquet")
    (workdir / "churn" / "recipe.yaml").write_text(
        "name: churn\nfeatures: {repo: feature_repo}\nsteps:\n  - {name: a, run: 'steps:a'}\n"
    )
    recipe = load_recipe(workdir / "churn")
    with (
        StackSession.open(None, recipe=recipe) as session,
        pytest.raises(StackError, match="feature service 'churn_service'"),
    ):
        apply_features(session, recipe)
    assert feast_views(workdir) == {}
