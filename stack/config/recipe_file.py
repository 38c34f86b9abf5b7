"""recipe.yaml: the steps of a lifecycle, their order, and what the stack must be able to do."""

from __future__ import annotations

import dataclasses
import graphlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stack.config.diagnostics import checked, collect, describe
from stack.config.features_section import FeaturesSection
from stack.config.monitoring import MonitoringSection
from stack.config.param_overrides import ParamOverride, overrides_for
from stack.config.policy import ModelSpec, PromotionPolicy
from stack.config.rollout import RolloutPlan
from stack.config.yaml_source import YamlDocument, load_yaml
from stack.contract.capabilities import (
    Capability,
    FeaturesCapability,
    MonitorCapability,
    OrchestratorCapability,
    RegistryCapability,
    ServerCapability,
    TrackerCapability,
)
from stack.contract.roles import Role
from stack.errors import StackConfigError

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
_TARGET = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$"

RECIPE_FILENAME = "recipe.yaml"


class StepSpec(BaseModel):
    """One step: the user's function (`module:function`, relative to the recipe folder)."""

    model_config = _FROZEN

    name: str = Field(pattern=_IDENTIFIER)
    run: str = Field(pattern=_TARGET)
    needs: tuple[str, ...] = ()
    params: dict[str, Any] = Field(default_factory=dict)
    description: str = ""


class Requirements(BaseModel):
    """`requires:`: per role, the capabilities the recipe needs from the stack's adapter,
    by name (`server: [canary]`); an empty list needs the role with any adapter."""

    model_config = _FROZEN

    tracker: tuple[TrackerCapability, ...] | None = None
    registry: tuple[RegistryCapability, ...] | None = None
    features: tuple[FeaturesCapability, ...] | None = None
    orchestrator: tuple[OrchestratorCapability, ...] | None = None
    server: tuple[ServerCapability, ...] | None = None
    monitor: tuple[MonitorCapability, ...] | None = None

    def by_role(self) -> dict[Role, tuple[Capability, ...]]:
        """The roles written, each with the capabilities it must declare."""
        return {
            role: tuple(wanted)
            for role in Role
            if (wanted := getattr(self, role.value)) is not None
        }


class RecipeFile(BaseModel):
    model_config = _FROZEN

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    model: ModelSpec | None = None
    promotion: PromotionPolicy = PromotionPolicy()
    rollout: RolloutPlan = RolloutPlan()
    features: FeaturesSection | None = None
    monitoring: MonitoringSection = MonitoringSection()
    requires: Requirements = Requirements()
    hooks: tuple[str, ...] = Field(default=(), description="module:object hook implementations")
    steps: tuple[StepSpec, ...] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Recipe:
    """A validated recipe and the folder its step code lives in.

    `overrides` are the `--param`s of the run about to start (checked against the steps by
    `stack.orchestration.steps.load_steps`); `spec` stays what the file says."""

    spec: RecipeFile
    path: Path
    doc: YamlDocument
    overrides: tuple[ParamOverride, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def policy_digest(self) -> str:
        """`sha256:` + hex of what decides a version's fate once built (`promotion`,
        `rollout`, `monitoring`, as canonical JSON): two recipe files with the same digest
        judge a version alike, whatever their steps or paths."""
        policy = self.spec.model_dump(mode="json", include={"promotion", "rollout", "monitoring"})
        text = json.dumps(policy, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def step(self, name: str) -> StepSpec:
        return next(s for s in self.spec.steps if s.name == name)

    def with_overrides(self, overrides: tuple[ParamOverride, ...]) -> Recipe:
        """This recipe, its next run to start with `overrides` instead of `self.overrides`."""
        return dataclasses.replace(self, overrides=tuple(overrides))

    def params(
        self, step: str, overrides: tuple[ParamOverride, ...] | None = None
    ) -> dict[str, Any]:
        """What `step` receives as params: its `params:`, then `overrides` (default: this
        recipe's) on top."""
        chosen = self.overrides if overrides is None else overrides
        return {**self.step(step).params, **overrides_for(chosen, step)}

    def order(self) -> list[str]:
        """Step names in dependency order; ties keep the order they are written in."""
        sorter = graphlib.TopologicalSorter({s.name: s.needs for s in self.spec.steps})
        sorter.prepare()
        position = {s.name: i for i, s in enumerate(self.spec.steps)}
        ordered: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=position.__getitem__)
            ordered.extend(ready)
            sorter.done(*ready)
        return ordered


def load_recipe(location: Path) -> Recipe:
    """Load `recipe.yaml` from a folder (or the file itself), checking the step graph."""
    recipe, problems = read_recipe(location)
    if problems or recipe is None:
        raise collect(recipe.doc if recipe else _recipe_path(location), problems)
    return recipe


def read_recipe(location: Path) -> tuple[Recipe | None, list[str]]:
    """The recipe at `location` and every problem of its shape and step graph, without
    raising (a YAML that does not parse still raises StackConfigError). With problems, the
    recipe returned has the fields that had them at their defaults (see
    `stack.config.diagnostics.checked`), for the step checks to run on; None when its steps
    themselves are not valid."""
    path = _recipe_path(location)
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise StackConfigError(f"{doc.where(())}: a recipe is a mapping with `name` and `steps`")
    result = checked(doc, RecipeFile, doc.data, stand_ins={"name": "recipe"})
    spec = result.value
    if spec is None:
        return None, result.problems
    problems = result.problems + _graph_problems(doc, spec) + _feature_problems(doc, spec)
    return Recipe(spec=spec, path=path.resolve(), doc=doc), problems


def _recipe_path(location: Path) -> Path:
    return location / RECIPE_FILENAME if location.is_dir() else location


def _graph_problems(doc: YamlDocument, spec: RecipeFile) -> list[str]:
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, step in enumerate(spec.steps):
        if step.name in seen:
            problems.append(
                describe(doc, ("steps", i, "name"), f"step {step.name!r} is defined twice")
            )
        seen.setdefault(step.name, i)
    for i, step in enumerate(spec.steps):
        for j, need in enumerate(step.needs):
            if need not in seen:
                known = ", ".join(seen)
                problems.append(
                    describe(
                        doc,
                        ("steps", i, "needs", j),
                        f"step {step.name!r} needs {need!r}, which is not a step",
                        hint=f"steps are: {known}",
                    )
                )
            elif need == step.name:
                problems.append(
                    describe(doc, ("steps", i, "needs", j), f"step {step.name!r} needs itself")
                )
            elif need in step.params:
                problems.append(
                    describe(
                        doc,
                        ("steps", i, "params", need),
                        f"param {need!r} has the name of an input step",
                        hint="rename the param: inputs and params are both passed by name",
                    )
                )
    if problems:
        return problems
    try:
        graphlib.TopologicalSorter({s.name: s.needs for s in spec.steps}).prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        first = next(i for i, s in enumerate(spec.steps) if s.name == exc.args[1][0])
        problems.append(describe(doc, ("steps", first, "needs"), f"steps form a cycle: {cycle}"))
    return problems


def _feature_problems(doc: YamlDocument, spec: RecipeFile) -> list[str]:
    """Views that name an entity or source the section does not declare."""
    section = spec.features
    if section is None:
        return []
    entities = {e.name for e in section.entities}
    sources = {s.name for s in section.sources}
    problems: list[str] = []
    for i, view in enumerate(section.views):
        for j, entity in enumerate(view.entities):
            if entity not in entities:
                problems.append(
                    describe(
                        doc,
                        ("features", "views", i, "entities", j),
                        f"view {view.name!r} uses entity {entity!r}, which is not declared",
                        hint=f"entities are: {', '.join(sorted(entities)) or 'none'}",
                    )
                )
        if view.source not in sources:
            problems.append(
                describe(
                    doc,
                    ("features", "views", i, "source"),
                    f"view {view.name!r} reads source {view.source!r}, which is not declared",
                    hint=f"sources are: {', '.join(sorted(sources)) or 'none'}",
                )
            )
    return problems
