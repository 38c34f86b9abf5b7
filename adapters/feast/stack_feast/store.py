"""The FeatureStore role on Feast: plan/apply, point-in-time frames, materialize, online reads."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from feast import FeatureStore, RepoConfig

from stack.contract.features import (
    FeatureDefinitions,
    FeaturePlan,
    FeatureViewRef,
    TrainingFrame,
)
from stack.contract.tracking import DatasetFingerprint
from stack.errors import StackError
from stack.plugins.manifest import AdapterContext
from stack_feast import definitions as defs
from stack_feast import entity_rows
from stack_feast.config import FeastConfig

TIMESTAMP = "event_timestamp"


class FeastFeatureStore:
    def __init__(self, config: FeastConfig | None, context: AdapterContext) -> None:
        self.config = config or FeastConfig()
        repo = (context.home / self.config.repo_dir).resolve()
        repo.mkdir(parents=True, exist_ok=True)
        self.store = FeatureStore(
            config=RepoConfig(
                project=self.config.project,
                registry=str(repo / "registry.db"),
                provider="local",
                offline_store=self.config.feast_offline(),
                online_store=self.config.feast_online(str(repo / "online.db")),
                entity_key_serialization_version=3,
            ),
            repo_path=str(repo),
        )
        self._views: dict[str, _ViewIndex] | None = None

    # -- control plane ------------------------------------------------------------------

    def plan(self, definitions: FeatureDefinitions) -> FeaturePlan:
        defs.check(definitions)
        existing = {v.name: v for v in self.store.list_feature_views()}
        wanted = {v.name: v for v in definitions.views}
        to_add = tuple(sorted(set(wanted) - set(existing)))
        to_update: list[str] = []
        breaking: list[str] = []
        for name in sorted(set(wanted) & set(existing)):
            have = {f.name: str(f.dtype) for f in existing[name].features}
            want = {f.name: str(defs.DTYPES[f.dtype]) for f in wanted[name].features}
            if have == want and sorted(existing[name].entities) == sorted(wanted[name].entities):
                continue
            to_update.append(name)
            for feature in sorted(set(have) - set(want)):
                breaking.append(f"{name}: feature {feature!r} would be removed")
            for feature in sorted(set(have) & set(want)):
                if have[feature] != want[feature]:
                    breaking.append(
                        f"{name}: feature {feature!r} would change type "
                        f"{have[feature]} -> {want[feature]}"
                    )
            if sorted(existing[name].entities) != sorted(wanted[name].entities):
                breaking.append(f"{name}: its entities would change")
        return FeaturePlan(to_add=to_add, to_update=tuple(to_update), breaking=tuple(breaking))

    def apply(self, definitions: FeatureDefinitions) -> FeaturePlan:
        """Apply whole, or refuse: a change that breaks an existing view applies nothing."""
        plan = self.plan(definitions)
        if plan.breaking:
            raise StackError(
                "refusing to apply feature definitions that break existing views:\n  "
                + "\n  ".join(plan.breaking)
                + "\n  add a new view (or a new feature) instead of changing one in place"
            )
        self.store.apply(defs.feast_objects(definitions))
        self._views = None
        return plan

    def read_repo(self, path: Path) -> FeatureDefinitions:
        """The definitions of an existing Feast repo, for the same plan/apply path."""
        from stack_feast.repo import read_repo

        return read_repo(path)

    # -- data plane ---------------------------------------------------------------------

    def training_frame(self, entity_frame: object, features: Sequence[str]) -> TrainingFrame:
        frame = _frame(entity_frame)
        views = self._check_features(features)
        if TIMESTAMP not in frame.columns:
            raise StackError(
                f"the entity frame needs an {TIMESTAMP!r} column: features are joined as of "
                "each row's time, so nothing from its future leaks in"
            )
        self._check_join_keys(frame.columns, views)
        _check_names(frame.columns, features)
        moments = entity_rows.utc_moments(frame[TIMESTAMP], TIMESTAMP)
        training = entity_rows.point_in_time(
            frame, moments, TIMESTAMP, _key_sets(features, views), self._retrieve
        )
        digest = hashlib.sha256(
            pd.util.hash_pandas_object(training, index=False).to_numpy().tobytes()
        ).hexdigest()
        fingerprint = DatasetFingerprint(
            name="training-frame",
            digest=f"sha256:{digest}",
            rows=len(training),
            columns=tuple(str(c) for c in training.columns),
            source=f"feast:{self.config.project}",
        )
        refs = tuple(FeatureViewRef(v.name, v.version) for v in views.values())
        return TrainingFrame(training, fingerprint, refs)

    def _retrieve(self, unique_rows: pd.DataFrame, refs: list[str]) -> pd.DataFrame:
        job = self.store.get_historical_features(entity_df=unique_rows, features=refs)
        answer: pd.DataFrame = job.to_df()
        return answer

    def materialize(self, end: datetime, *, start: datetime | None = None) -> int:
        """Load the online store up to `end` (incrementally when `start` is None)."""
        names = [v.name for v in self.store.list_feature_views()]
        if start is None:
            self.store.materialize_incremental(end_date=end)
        else:
            self.store.materialize(start_date=start, end_date=end)
        return len(names)

    def online_features(
        self, features: Sequence[str], entity_rows: Sequence[Mapping[str, object]]
    ) -> list[dict[str, object]]:
        views = self._check_features(features)
        for row in entity_rows:
            self._check_join_keys(row.keys(), views)
        response = self.store.get_online_features(
            features=list(features), entity_rows=[dict(r) for r in entity_rows]
        ).to_dict()
        count = len(entity_rows)
        return [{key: values[i] for key, values in response.items()} for i in range(count)]

    # -- checks -------------------------------------------------------------------------

    def _check_features(self, features: Sequence[str]) -> dict[str, _ViewIndex]:
        """The views the features come from; an unknown feature names the known ones.

        Reading Feast's registry costs milliseconds, more than a SQLite lookup itself: the
        index is cached and read again only when a feature is not in it (another process
        may have applied since)."""
        used = _lookup(features, self._index(refresh=False))
        if used is None:
            index = self._index(refresh=True)
            used = _lookup(features, index)
            if used is None:
                known = (
                    ", ".join(
                        f"{name}:{feature}"
                        for name, v in index.items()
                        for feature in sorted(v.features)
                    )
                    or "none (apply definitions first)"
                )
                missing = next(ref for ref in features if _lookup([ref], index) is None)
                raise StackError(f"unknown feature {missing!r}; features are: {known}")
        return used

    def _index(self, *, refresh: bool) -> dict[str, _ViewIndex]:
        if refresh or self._views is None:
            self._views = {
                v.name: _ViewIndex(
                    v.name,
                    frozenset(f.name for f in v.features),
                    tuple(c.name for c in v.entity_columns),
                    _version(v),
                )
                for v in self.store.list_feature_views()
            }
        return self._views

    @staticmethod
    def _check_join_keys(columns: Any, views: Mapping[str, _ViewIndex]) -> None:
        present = set(columns)
        for view in views.values():
            for key in view.join_keys:
                if key not in present:
                    raise StackError(f"missing entity key {key!r} (needed by view {view.name!r})")


@dataclass(frozen=True, slots=True)
class _ViewIndex:
    name: str
    features: frozenset[str]
    join_keys: tuple[str, ...]
    version: str


def _lookup(
    features: Sequence[str], index: Mapping[str, _ViewIndex]
) -> dict[str, _ViewIndex] | None:
    used: dict[str, _ViewIndex] = {}
    for ref in features:
        view_name, sep, feature = ref.partition(":")
        view = index.get(view_name)
        if not sep or view is None or feature not in view.features:
            return None
        used[view_name] = view
    return used


def _key_sets(
    features: Sequence[str], views: Mapping[str, _ViewIndex]
) -> list[tuple[tuple[str, ...], list[str]]]:
    """The feature refs grouped by their view's join keys, in the order first asked."""
    sets: dict[tuple[str, ...], list[str]] = {}
    for ref in features:
        sets.setdefault(views[ref.partition(":")[0]].join_keys, []).append(ref)
    return list(sets.items())


def _check_names(columns: Any, features: Sequence[str]) -> None:
    """A feature lands in a column of its own name: refuse one that would take another's."""
    taken = {str(c) for c in columns}
    seen: dict[str, str] = {}
    for ref in features:
        name = ref.partition(":")[2]
        if name in taken:
            raise StackError(
                f"feature {ref!r}: the entity frame already has a column {name!r}; "
                "rename or drop that column"
            )
        if name in seen:
            raise StackError(
                f"features {seen[name]!r} and {ref!r} would both be column {name!r}; "
                "ask for one of them"
            )
        seen[name] = ref


def _frame(entity_frame: object) -> pd.DataFrame:
    if not isinstance(entity_frame, pd.DataFrame):
        raise StackError(f"the entity frame must be a pandas DataFrame, not {type(entity_frame)}")
    return entity_frame


def _version(view: Any) -> str:
    text = repr(sorted((f.name, str(f.dtype)) for f in view.features))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
