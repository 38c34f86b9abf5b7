"""Every broken stack.yaml or recipe.yaml is refused the same way by `mlstack stack validate`
and `mlstack run`: exit 1, the file, line and field named, no traceback, nothing run or written.

Each case is a small file (or two) over a valid project: a stack file inheriting its roles
from the embedded local stack, and a recipe `r/` of one step. The CLI runs in-process (its
real entry point, `tests.support.cli.run_in_process`), so the matrix takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.cli import run_in_process

STACK = "name: t\nspine: {url: 'sqlite:///.mlstack/spine.db'}\n"
RECIPE = "name: r\nsteps:\n  - {name: a, run: 'steps:a'}\n"
STEPS = """
def a():
    return 1


def typed(n: int = 1, lr: float = 0.1):
    return n * lr
"""
VALID = {"stack.yaml": STACK, "r/recipe.yaml": RECIPE, "r/steps.py": STEPS}


@dataclass(frozen=True)
class Broken:
    """`files` replace or add to VALID; `expected` is in both commands' output."""

    id: str
    files: dict[str, str]
    expected: str
    folders: tuple[str, ...] = field(default=())


def stack(id: str, text: str, expected: str, files: dict[str, str] | None = None) -> Broken:
    return Broken(id, {"stack.yaml": text, **(files or {})}, expected)


def spine(
    id: str,
    url: str,
    expected: str = "stack.yaml:2: spine.url",
    files: dict[str, str] | None = None,
) -> Broken:
    return stack(id, f"name: t\nspine: {{url: '{url}'}}\n", expected, files)


def recipe(id: str, top: str, expected: str, files: dict[str, str] | None = None) -> Broken:
    """`name: r`, then `top` (from line 2), then the valid recipe's one step."""
    text = "name: r\n" + top + "steps:\n  - {name: a, run: 'steps:a'}\n"
    return Broken(id, {"r/recipe.yaml": text, **(files or {})}, expected)


def steps(id: str, lines: str, expected: str, files: dict[str, str] | None = None) -> Broken:
    """`name: r`, then `steps:` and `lines` (the first step on line 3)."""
    return Broken(id, {"r/recipe.yaml": "name: r\nsteps:\n" + lines, **(files or {})}, expected)


STACK_CASES = [
    # booleans are not numbers, nor numbers booleans (YAML's yes/no/on/off included)
    stack(
        "batch-size-yes",
        "name: t\ntracker: {adapter: mlflow, batch_size: yes}\n",
        "stack.yaml:2: tracker.batch_size: true is a YAML boolean",
    ),
    stack(
        "flush-interval-on",
        "name: t\ntracker:\n  adapter: mlflow\n  flush_interval_seconds: on\n",
        "stack.yaml:4: tracker.flush_interval_seconds: true is a YAML boolean",
    ),
    stack(
        "retry-attempts-true",
        "name: t\ntracker: {adapter: mlflow, retry_attempts: true}\n",
        "stack.yaml:2: tracker.retry_attempts",
    ),
    stack(
        "server-port-yes",
        "name: t\nserver: {adapter: bentoml, port: yes}\n",
        "stack.yaml:2: server.port: true is a YAML boolean",
    ),
    stack(
        "log-flush-off",
        "name: t\nserver: {adapter: bentoml, log_flush_seconds: off}\n",
        "stack.yaml:2: server.log_flush_seconds: false is a YAML boolean",
    ),
    stack(
        "kubernetes-gpus-true",
        "name: t\nserver:\n  adapter: bentoml\n  kubernetes: {gpus: true}\n",
        "stack.yaml:4: server.kubernetes.gpus",
    ),
    stack(
        "reference-cache-no",
        "name: t\nmonitor: {adapter: evidently, reference_cache: no}\n",
        "stack.yaml:2: monitor.reference_cache: false is a YAML boolean",
    ),
    stack(
        "judge-timeout-no",
        "name: t\njudge: {base_url: 'http://x', model: m, timeout_seconds: no}\n",
        "stack.yaml:2: judge.timeout_seconds: false is a YAML boolean",
    ),
    # other types and bounds
    stack(
        "retry-attempts-fraction",
        "name: t\ntracker: {adapter: mlflow, retry_attempts: 2.5}\n",
        "stack.yaml:2: tracker.retry_attempts",
    ),
    stack(
        "buffer-too-small",
        "name: t\ntracker: {adapter: mlflow, max_buffered_points: 10}\n",
        "stack.yaml:2: tracker.max_buffered_points",
    ),
    stack(
        "workers-zero",
        "name: t\nserver: {adapter: bentoml, workers: 0}\n",
        "stack.yaml:2: server.workers",
    ),
    stack("name-empty", "name: ''\n", "stack.yaml:1: name"),
    stack(
        "name-a-boolean",
        "name: yes\n",
        "stack.yaml:1: name: Input should be a valid string\n    hint: YAML reads 2024, 1.5, yes",
    ),
    stack("home-a-list", "name: t\nhome: [a, b]\n", "stack.yaml:2: home"),
    stack(
        "spine-password-list",
        "name: t\nspine: {url: 'sqlite:///x.db', password: [a]}\n",
        "stack.yaml:2: spine.password",
    ),
    stack(
        "spine-password-on-sqlite",
        "name: t\nspine: {url: 'sqlite:///x.db', password: sekrit}\n",
        "stack.yaml:2: spine",
    ),
    stack(
        "group-not-a-list",
        "name: t\nidentity: {groups: {ml-leads: 7}}\n",
        "stack.yaml:2: identity.groups.ml-leads",
    ),
    stack(
        "group-a-single-name",
        "name: t\nidentity: {groups: {ml-leads: alice}}\n",
        "stack.yaml:2: identity.groups.ml-leads: Input should be a valid tuple\n"
        "    hint: write a list, even of one: [alice]",
    ),
    stack(
        "token-secret-number",
        "name: t\nidentity: {token_secret: 12345}\n",
        "stack.yaml:2: identity.token_secret",
    ),
    stack(
        "judge-not-http",
        "name: t\njudge: {base_url: 'ftp://x', model: m}\n",
        "stack.yaml:2: judge.base_url",
    ),
    stack(
        "openlineage-url-number",
        "name: t\nopenlineage: {url: 5}\n",
        "stack.yaml:2: openlineage.url",
    ),
    # unknown fields, adapters and roles
    stack(
        "adapter-option-misspelt",
        "name: t\ntracker: {adapter: mlflow, tracking_url: x}\n",
        "stack.yaml:2: tracker.tracking_url",
    ),
    stack(
        "registry-tracker-option",
        "name: t\nregistry: {adapter: mlflow, batch_size: 10}\n",
        "stack.yaml:2: registry.batch_size",
    ),
    stack(
        "feast-unknown-option",
        "name: t\nfeatures: {adapter: feast, nonsense: 1}\n",
        "stack.yaml:2: features.nonsense",
    ),
    stack(
        "orchestrator-unknown-option",
        "name: t\norchestrator: {adapter: local, outputs: x}\n",
        "stack.yaml:2: orchestrator.outputs",
    ),
    stack(
        "adapter-not-installed",
        "name: t\nmonitor: {adapter: nosuchtool}\n",
        "stack.yaml:2: monitor.adapter",
    ),
    stack(
        "adapter-wrong-role", "name: t\nserver: {adapter: mlflow}\n", "stack.yaml:2: server.adapter"
    ),
    stack("adapter-empty", "name: t\ntracker: {adapter: ''}\n", "stack.yaml:2: tracker.adapter"),
    stack("role-a-list", "name: t\ntracker: [mlflow]\n", "stack.yaml:2: tracker"),
    stack("role-misspelt", "name: t\ntraker: {adapter: mlflow}\n", "stack.yaml:2: traker"),
    stack("section-misspelt", "name: t\nspine_url: 'sqlite:///x.db'\n", "stack.yaml:2: spine_url"),
    stack("role-left-empty", "name: t\nserver:\n", "stack.yaml:2: server: empty"),
    stack("no-orchestrator", "name: t\norchestrator: none\n", "stack.yaml:2: orchestrator"),
    stack("name-missing", "tracker: {adapter: mlflow}\n", "stack.yaml:1: name: Field required"),
    # the file itself
    stack("duplicate-key", "name: t\nname: u\n", "stack.yaml:2: duplicate key 'name'"),
    stack("not-yaml", "name: t\ntracker: {adapter: mlflow\n", "stack.yaml:3: not valid YAML"),
    stack(
        "env-unset",
        "name: ${MLSTACK_TEST_UNSET_VARIABLE}\n",
        "stack.yaml:1: name: environment variable MLSTACK_TEST_UNSET_VARIABLE is not set",
    ),
    stack("a-list", "- tracker\n- server\n", "stack.yaml:1: a stack file is a mapping"),
    stack("empty", "", "stack.yaml:1: the file is empty"),
    # the spine: scheme, form, driver, and a database that answers
    spine("spine-scheme-mysql", "mysql://db/spine"),
    spine("spine-scheme-postgres", "postgres://db/spine"),
    spine("spine-not-a-url", "not a url"),
    spine("spine-port-not-a-number", "postgresql://127.0.0.1:port/spine"),
    spine("spine-unknown-driver", "postgresql+asyncpg://127.0.0.1/spine"),
    spine(
        "spine-driver-not-installed",
        "postgresql+psycopg2://127.0.0.1/spine",
        "stack.yaml:2: spine.url: the driver 'psycopg2' is not installed",
    ),
    spine(
        "spine-database-missing",
        "postgresql://127.0.0.1:5432/mlstack_no_such_database",
        "stack.yaml:2: spine.url: the database does not answer",
    ),
    spine(
        "spine-nothing-listening",
        "postgresql://127.0.0.1:1/spine",
        "stack.yaml:2: spine.url: the database does not answer",
    ),
    spine("spine-a-folder", "sqlite:///adir", "stack.yaml:2: spine.url: ", {"adir/keep": ""}),
    spine("spine-not-sqlite", "sqlite:///notes.txt", files={"notes.txt": "hello"}),
    spine("spine-under-a-file", "sqlite:///notes.txt/spine.db", files={"notes.txt": "hello"}),
    stack("spine-url-boolean", "name: t\nspine: {url: yes}\n", "stack.yaml:2: spine.url"),
    stack("spine-url-number", "name: t\nspine:\n  url: 5\n", "stack.yaml:3: spine.url"),
]

HOOK_MISSPELT = """
from stack.hooks import hookimpl


@hookimpl
def on_promotion_requestd(version, target_state, actor):
    return None
"""

RECIPE_CASES = [
    # steps: shape, graph, and the functions they name
    Broken(
        "steps-missing", {"r/recipe.yaml": "name: r\n"}, "r/recipe.yaml:1: steps: Field required"
    ),
    Broken("steps-empty", {"r/recipe.yaml": "name: r\nsteps: []\n"}, "r/recipe.yaml:2: steps"),
    steps(
        "step-target-not-module-function",
        "  - {name: a, run: 'steps.a'}\n",
        "r/recipe.yaml:3: steps.0.run",
    ),
    steps(
        "step-module-missing",
        "  - {name: a, run: 'nosuchmodule:a'}\n",
        "r/recipe.yaml:3: steps.0.run: cannot import 'nosuchmodule'",
    ),
    steps(
        "step-function-missing",
        "  - {name: a, run: 'steps:nope'}\n",
        "r/recipe.yaml:3: steps.0.run: 'steps' has no function 'nope'",
    ),
    steps(
        "step-signature",
        "  - {name: a, run: 'steps:a', params: {x: 1}}\n",
        "r/recipe.yaml:3: steps.0.params.x: steps:a takes no parameter 'x'",
    ),
    steps(
        "step-param-boolean-for-int",
        "  - {name: a, run: 'steps:typed', params: {n: yes}}\n",
        "r/recipe.yaml:3: steps.0.params.n",
    ),
    steps(
        "step-param-text-for-float",
        "  - {name: a, run: 'steps:typed', params: {lr: fast}}\n",
        "r/recipe.yaml:3: steps.0.params.lr",
    ),
    steps(
        "step-needs-unknown",
        "  - {name: a, run: 'steps:a', needs: [z]}\n",
        "r/recipe.yaml:3: steps.0.needs.0",
    ),
    steps(
        "step-needs-text",
        "  - {name: a, run: 'steps:a', needs: b}\n",
        "r/recipe.yaml:3: steps.0.needs",
    ),
    steps(
        "step-twice",
        "  - {name: a, run: 'steps:a'}\n  - {name: a, run: 'steps:a'}\n",
        "r/recipe.yaml:4: steps.1.name",
    ),
    steps(
        "step-cycle",
        "  - {name: a, run: 'steps:a', needs: [b]}\n  - {name: b, run: 'steps:a', needs: [a]}\n",
        "steps form a cycle",
    ),
    steps(
        "step-name-with-space",
        "  - {name: 'a b', run: 'steps:a'}\n",
        "r/recipe.yaml:3: steps.0.name",
    ),
    steps(
        "step-params-a-list",
        "  - {name: a, run: 'steps:a', params: [1, 2]}\n",
        "r/recipe.yaml:3: steps.0.params",
    ),
    recipe(
        "step-module-syntax-error",
        "",
        "r/recipe.yaml:3: steps.0.run: cannot import 'steps'",
        files={"r/steps.py": "def a(:\n"},
    ),
    recipe(
        "step-module-raises",
        "",
        "r/recipe.yaml:3: steps.0.run: cannot import 'steps'",
        files={"r/steps.py": "raise RuntimeError('no data')\n"},
    ),
    # hooks: importable, and real hook implementations
    recipe(
        "hook-module-missing",
        "hooks: [mlstack_test_no_such_hooks]\n",
        "r/recipe.yaml:2: hooks.0: cannot load 'mlstack_test_no_such_hooks'",
    ),
    recipe(
        "hook-attribute-missing",
        "hooks: ['broken_case_hooks_attr:missing']\n",
        "r/recipe.yaml:2: hooks.0: cannot load 'broken_case_hooks_attr:missing'",
        files={"r/broken_case_hooks_attr.py": "x = 1\n"},
    ),
    recipe(
        "hook-misspelt-event",
        "hooks: [broken_case_hooks_misspelt]\n",
        "r/recipe.yaml:2: hooks.0: invalid hook implementation",
        files={"r/broken_case_hooks_misspelt.py": HOOK_MISSPELT},
    ),
    recipe(
        "hook-module-raises",
        "hooks: [broken_case_hooks_raise]\n",
        "r/recipe.yaml:2: hooks.0: cannot load 'broken_case_hooks_raise': RuntimeError",
        files={"r/broken_case_hooks_raise.py": "raise RuntimeError('boom at import')\n"},
    ),
    recipe("hooks-text", "hooks: my_hooks\n", "r/recipe.yaml:2: hooks"),
    # the recipe retraining runs
    recipe(
        "retrain-recipe-missing",
        "monitoring:\n  retrain: {enabled: true, recipe: nope.yaml}\n",
        "r/recipe.yaml:3: monitoring.retrain.recipe: 'nope.yaml' does not exist",
    ),
    recipe(
        "retrain-recipe-invalid",
        "monitoring:\n  retrain: {recipe: retrain.yaml}\n",
        "r/retrain.yaml:1: steps: Field required",
        files={"r/retrain.yaml": "name: r2\n"},
    ),
    recipe(
        "retrain-recipe-step-missing",
        "monitoring:\n  retrain: {recipe: retrain.yaml}\n",
        "r/retrain.yaml:3: steps.0.run",
        files={"r/retrain.yaml": "name: r2\nsteps:\n  - {name: a, run: 'steps:gone'}\n"},
    ),
    recipe(
        "retrain-enabled-number",
        "monitoring:\n  retrain: {enabled: 1}\n",
        "r/recipe.yaml:3: monitoring.retrain.enabled: 1 is a number",
    ),
    recipe(
        "retrain-cooldown-boolean",
        "monitoring:\n  retrain: {cooldown: yes}\n",
        "r/recipe.yaml:3: monitoring.retrain.cooldown",
    ),
    # monitoring
    recipe("min-rows-yes", "monitoring: {min_rows: yes}\n", "r/recipe.yaml:2: monitoring.min_rows"),
    recipe("min-rows-zero", "monitoring: {min_rows: 0}\n", "r/recipe.yaml:2: monitoring.min_rows"),
    recipe(
        "drifted-share-on",
        "monitoring:\n  policy: {max_drifted_share: on}\n",
        "r/recipe.yaml:3: monitoring.policy.max_drifted_share",
    ),
    recipe(
        "drifted-share-above-one",
        "monitoring:\n  policy: {max_drifted_share: 1.5}\n",
        "r/recipe.yaml:3: monitoring.policy.max_drifted_share",
    ),
    recipe(
        "window-not-a-duration",
        "monitoring: {window: soon}\n",
        "r/recipe.yaml:2: monitoring.window",
    ),
    recipe("task-misspelt", "monitoring: {task: regresion}\n", "r/recipe.yaml:2: monitoring.task"),
    recipe(
        "labelled-rows-true",
        "monitoring:\n  labels: {min_labelled_rows: true}\n",
        "r/recipe.yaml:3: monitoring.labels.min_labelled_rows",
    ),
    recipe(
        "webhook-not-a-url",
        "monitoring:\n  alerts: {webhook: not-a-url}\n",
        "r/recipe.yaml:3: monitoring.alerts.webhook",
    ),
    recipe(
        "monitoring-source-unknown",
        "monitoring: {source: stream}\n",
        "r/recipe.yaml:2: monitoring.source",
    ),
    # rollout
    recipe(
        "rollout-strategy-unknown",
        "rollout: {strategy: blue-green}\n",
        "r/recipe.yaml:2: rollout.strategy",
    ),
    recipe(
        "bake-seconds-yes",
        "rollout: {bake_seconds: yes}\n",
        "r/recipe.yaml:2: rollout.bake_seconds",
    ),
    recipe(
        "rollout-steps-decreasing",
        "rollout: {steps: [0.5, 0.1]}\n",
        "r/recipe.yaml:2: rollout.steps",
    ),
    recipe(
        "min-requests-true",
        "rollout:\n  slo: {min_requests: true}\n",
        "r/recipe.yaml:3: rollout.slo.min_requests",
    ),
    # what the recipe needs, and who it is
    recipe(
        "requires-role-misspelt",
        "requires: {trackr: [models]}\n",
        "r/recipe.yaml:2: requires.trackr",
    ),
    recipe(
        "requires-unknown-capability",
        "requires: {server: [blue_green]}\n",
        "r/recipe.yaml:2: requires.server.0: Input should be 'canary'",
    ),
    recipe(
        "requires-missing-capability",
        "requires: {orchestrator: [compile]}\n",
        "orchestrator.adapter: recipe 'r' needs orchestrator capabilities compile",
    ),
    Broken(
        "name-with-space",
        {"r/recipe.yaml": "name: my recipe\n" + RECIPE[8:]},
        "r/recipe.yaml:1: name",
    ),
    recipe("unknown-field", "stepz: []\n", "r/recipe.yaml:2: stepz"),
    recipe(
        "risk-tier-unknown",
        "model: {name: m, risk_tier: extreme}\n",
        "r/recipe.yaml:2: model.risk_tier",
    ),
    # promotion gates
    recipe(
        "threshold-without-bound",
        "promotion:\n  gates: {serving: {thresholds: {auc: {}}}}\n",
        "r/recipe.yaml:3: promotion.gates.serving.thresholds.auc",
    ),
    recipe(
        "gate-state-misspelt",
        "promotion:\n  gates: {servng: {}}\n",
        "r/recipe.yaml:3: promotion.gates.servng",
    ),
    recipe(
        "higher-is-better-number",
        "promotion:\n  gates:\n    serving:\n      champion: {metric: auc, higher_is_better: 1}\n",
        "r/recipe.yaml:5: promotion.gates.serving.champion.higher_is_better: 1 is a number",
    ),
    recipe(
        "approvals-count-yes",
        "promotion:\n  gates:\n    serving:\n      approvals: {count: yes}\n",
        "r/recipe.yaml:5: promotion.gates.serving.approvals.count",
    ),
    # features
    recipe(
        "view-entity-undeclared",
        "features:\n  sources: [{name: s, path: d.parquet}]\n"
        "  views: [{name: v, entities: [customer], source: s, features: {f: float}}]\n",
        "r/recipe.yaml:4: features.views.0.entities.0",
    ),
    recipe(
        "view-ttl-yes",
        "features:\n  entities: [{name: c, join_keys: [id]}]\n"
        "  sources: [{name: s, path: d.parquet}]\n"
        "  views: [{name: v, entities: [c], source: s, features: {f: float}, ttl_days: yes}]\n",
        "r/recipe.yaml:5: features.views.0.ttl_days",
    ),
]


def files_in(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` and its bytes, compiled Python aside."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.mark.parametrize("case", STACK_CASES + RECIPE_CASES, ids=lambda case: case.id)
def test_a_broken_file_is_refused_alike_by_validate_and_run(case: Broken, workdir: Path) -> None:
    for name, text in {**VALID, **case.files}.items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text(text)
    before = files_in(workdir)

    validate = run_in_process("stack", "validate", "--recipe", "r")
    run = run_in_process("run", "r")

    for result in (validate, run):
        output = result.stdout + result.stderr
        assert result.returncode == 1, output
        assert case.expected in output
        assert "Traceback" not in output
    assert validate.stderr == run.stderr  # the same checks, the same words
    assert files_in(workdir) == before  # no spine, no MLflow store, no run recorded


def test_the_matrix_is_at_least_sixty_files() -> None:
    assert len(STACK_CASES) + len(RECIPE_CASES) >= 60
    assert len({case.id for case in STACK_CASES + RECIPE_CASES}) == len(STACK_CASES + RECIPE_CASES)
