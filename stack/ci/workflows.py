"""`mlstack ci init github|gitlab`: the workflow file for a recipe.

On a pull request (or merge request) that touches the recipe, CI runs it — training and
evaluation — and writes the gate's verdict for `approved` and `serving` to the job summary.
On merge to the main branch it runs the recipe again and *requests* promotion: the version
moves to `approved` through its gate, and the `serving` gate's verdict shows which approvals
it still needs; an approver gives them with `mlstack approve`, and `mlstack promote` finishes.
Nothing in CI can approve on someone's behalf."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class WorkflowSpec:
    recipe: str  # the recipe's folder or file, relative to the repository root
    model: str
    packages: tuple[str, ...]  # what `pip install` needs: mlstack and the stack's adapters
    stack_file: str | None = None  # relative to the repository root
    branch: str = "main"
    python: str = "3.11"

    @property
    def paths(self) -> list[str]:
        folder = (
            self.recipe
            if not self.recipe.endswith((".yaml", ".yml"))
            else str(Path(self.recipe).parent)
        )
        return [f"{folder}/**"] + ([self.stack_file] if self.stack_file else [])


def _commands(spec: WorkflowSpec, summary: str) -> dict[str, list[str]]:
    candidate = f"{spec.model}@candidate"
    gate = [
        f'echo "## Gate for {spec.model}" >> {summary}',
        f'echo "\\`\\`\\`" >> {summary}',
        # a candidate that misses its `approved` gate fails the check (--dry-run exits 1);
        # the serving gate is a report: its approvals come after the merge
        f"mlstack promote {candidate} --to approved --dry-run | tee -a {summary}",
        f"mlstack promote {candidate} --to serving --dry-run | tee -a {summary} || true",
        f'echo "\\`\\`\\`" >> {summary}',
    ]
    request = [
        f'mlstack promote {candidate} --to approved --reason "merged to {spec.branch}"',
        f'echo "## Promotion requested for {spec.model}" >> {summary}',
        f'echo "\\`\\`\\`" >> {summary}',
        f"mlstack promote {spec.model}@approved --to serving --dry-run | tee -a {summary} || true",
        f'echo "\\`\\`\\`" >> {summary}',
        f'echo "Approvers: mlstack approve {spec.model}@approved --to serving; then mlstack '
        f'promote {spec.model}@approved --to serving" >> {summary}',
    ]
    return {
        "install": [f"python -m pip install {' '.join(spec.packages)}"],
        "run": [f"mlstack run {spec.recipe}"],
        "gate": gate,
        "request": request,
    }


def github_workflow(spec: WorkflowSpec) -> dict[str, Any]:
    commands = _commands(spec, "$GITHUB_STEP_SUMMARY")
    env: dict[str, str] = {"MLSTACK_USER": "ci-${{ github.actor }}"}
    if spec.stack_file:
        env["MLSTACK_STACK"] = spec.stack_file

    def job(condition: str, last: str, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "if": condition,
            "runs-on": "ubuntu-latest",
            "steps": [
                {"uses": "actions/checkout@v4"},
                {"uses": "actions/setup-python@v5", "with": {"python-version": spec.python}},
                {"name": "Install mlstack", "run": "\n".join(commands["install"])},
                {"name": "Train and evaluate", "run": "\n".join(commands["run"])},
                {"name": last, "run": "\n".join(commands["gate" if "Gate" in last else "request"])},
            ],
        }

    return {
        "name": f"mlstack {spec.model}",
        "on": {
            "pull_request": {"paths": spec.paths},
            "push": {"branches": [spec.branch], "paths": spec.paths},
        },
        "permissions": {"contents": "read"},
        "env": env,
        "jobs": {
            "train": job("github.event_name == 'pull_request'", "Gate verdict", "Train and gate"),
            "request-promotion": job(
                "github.event_name == 'push'", "Request promotion", "Request promotion"
            ),
        },
    }


def gitlab_pipeline(spec: WorkflowSpec) -> dict[str, Any]:
    commands = _commands(spec, "gate.md")
    variables: dict[str, str] = {"MLSTACK_USER": "ci-$GITLAB_USER_LOGIN"}
    if spec.stack_file:
        variables["MLSTACK_STACK"] = spec.stack_file
    changes = {"changes": spec.paths}

    def job(rule: str, last: str) -> dict[str, Any]:
        return {
            "image": f"python:{spec.python}",
            "rules": [{"if": rule, **changes}],
            "script": [*commands["install"], *commands["run"], *commands[last]],
            "artifacts": {"paths": ["gate.md"], "when": "always"},
        }

    return {
        "stages": ["train", "promote"],
        "variables": variables,
        "mlstack-train": {
            "stage": "train",
            **job('$CI_PIPELINE_SOURCE == "merge_request_event"', "gate"),
        },
        "mlstack-request-promotion": {
            "stage": "promote",
            **job(f'$CI_COMMIT_BRANCH == "{spec.branch}"', "request"),
        },
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line scripts as YAML block literals (`|`), as people write them; no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def render(document: dict[str, Any]) -> str:
    header = "# Written by `mlstack ci init`; the commands are the ones you run by hand.\n"
    return header + yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=120)


def write_workflow(kind: str, spec: WorkflowSpec, root: Path) -> Path:
    if kind == "github":
        name = Path(spec.recipe).name.removesuffix(".yaml").removesuffix(".yml")
        path = root / ".github" / "workflows" / f"mlstack-{name}.yml"
        text = render(github_workflow(spec))
    elif kind == "gitlab":
        path = root / ".gitlab-ci.yml"
        text = render(gitlab_pipeline(spec))
    else:
        raise ValueError(f"unknown CI {kind!r}: github or gitlab")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def adapter_packages(packages: Sequence[str]) -> tuple[str, ...]:
    """mlstack first, then each adapter distribution once."""
    ordered = ["mlstack", *(p for p in packages if p != "mlstack")]
    return tuple(dict.fromkeys(ordered))
