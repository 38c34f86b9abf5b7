"""`mlstack run RECIPE --param STEP.NAME=VALUE`: typed, checked before anything runs, recorded
with the run, and kept by a run that resumes it."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from stack.config.param_overrides import MalformedOverride, parse_override
from tests.cli.conftest import Cli

RECIPE = """
name: tunable
steps:
  - {name: prepare, run: "steps:prepare", params: {rows: 3}}
  - name: train
    run: "steps:train"
    needs: [prepare]
    params: {n_estimators: 100, lr: 0.1, warm: false, features: [a], note: plain}
"""

# Each step writes what it received (type and value) next to itself; train fails until
# fixed.flag exists when the recipe folder has a fail.flag.
STEPS = """
import json
from pathlib import Path

HERE = Path(__file__).parent


def _record(step, received):
    typed = {name: [type(value).__name__, value] for name, value in received.items()}
    (HERE / f"{step}.received.json").write_text(json.dumps(typed, default=str))


def prepare(rows: int, ctx):
    _record("prepare", {"rows": rows, "ctx.params": ctx.params})
    return list(range(rows))


def train(
    prepare, n_estimators: int, lr: float, warm: bool, features, note: str | None, ctx, max_depth=3
):
    if (HERE / "fail.flag").exists() and not (HERE / "fixed.flag").exists():
        raise ValueError("out of memory")
    _record(
        "train",
        {
            "n_estimators": n_estimators,
            "lr": lr,
            "warm": warm,
            "features": features,
            "note": note,
            "max_depth": max_depth,
            "ctx.params": ctx.params,
        },
    )
    return len(prepare) * n_estimators
"""


def make_recipe(folder: Path) -> Path:
    folder.mkdir()
    (folder / "recipe.yaml").write_text(dedent(RECIPE))
    (folder / "steps.py").write_text(dedent(STEPS))
    return folder


def received(recipe: Path, step: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((recipe / f"{step}.received.json").read_text())
    return data


def run_id_of(stdout: str) -> str:
    return stdout.strip().splitlines()[-1].split()[1].rstrip(":")


def test_params_reach_the_step_typed_as_yaml_and_are_recorded_with_the_run(
    cli: Cli, workdir: Path
) -> None:
    recipe = make_recipe(workdir / "tunable")
    result = cli(
        "run",
        str(recipe),
        "-q",
        "--param",
        "train.n_estimators=300",
        "--param",
        "train.lr=0.05",
        "-P",
        "train.warm=true",
        "--param",
        "train.features=[tenure, 2]",
        "--param",
        'train.note="300"',
        check=True,
    )
    train = received(recipe, "train")
    assert train["n_estimators"] == ["int", 300]
    assert train["lr"] == ["float", 0.05]
    assert train["warm"] == ["bool", True]
    assert train["features"] == ["list", ["tenure", 2]]
    assert train["note"] == ["str", "300"]
    assert train["max_depth"] == ["int", 3]  # undeclared: the function's own default
    assert train["ctx.params"][1] == {
        "n_estimators": 300,
        "lr": 0.05,
        "warm": True,
        "features": ["tenure", 2],
        "note": "300",
    }
    assert received(recipe, "prepare")["rows"] == ["int", 3]  # other steps: the recipe's

    run_id = run_id_of(result.stdout)
    runs = cli("runs", check=True).stdout
    assert f"{run_id}  tunable  succeeded" in runs
    assert (
        "params  train.n_estimators=300 train.lr=0.05 train.warm=true "
        'train.features=[tenure, 2] train.note="300"'
    ) in runs

    cli("run", str(recipe), "-q", check=True)  # the next run: the recipe's params again
    assert received(recipe, "train")["n_estimators"] == ["int", 100]
    assert cli("runs", check=True).stdout.count("params  ") == 1


BAD_PARAMS = [
    (
        "trian.lr=0.2",
        1,
        [
            "--param trian.lr=0.2: recipe 'tunable' has no step 'trian'",
            "did you mean 'train'? steps are: prepare, train",
        ],
    ),
    (
        "train.max_depth=8",  # the function takes it, the recipe does not declare it
        1,
        [
            "--param train.max_depth=8: step 'train' does not declare param 'max_depth' in ",
            "recipe.yaml:8",
            "declare it under the step's params ({max_depth: 3})",
            "params of step 'train' you can set: n_estimators, lr, warm, features, note",
        ],
    ),
    (
        "train.depth=8",
        1,
        [
            "--param train.depth=8: steps:train takes no parameter 'depth'",
            "params of step 'train' you can set: n_estimators, lr, warm, features, note",
        ],
    ),
    (
        "train.prepare=[1]",
        1,
        ["--param train.prepare=[1]: 'prepare' is an input of step 'train'", "not a param"],
    ),
    ("prepare.ctx=1", 1, ["--param prepare.ctx=1: 'ctx' is the step's context"]),
    (
        "prepare.rows=ten",  # the function says int
        1,
        [
            "--param prepare.rows=ten: rows = 'ten' is str, but the step takes rows: int",
            "quote a string",
        ],
    ),
    ("train.warm=1", 1, ["warm = 1 is int, but the step takes warm: bool"]),
    ("train.lr", 2, ["Invalid value for '--param'", "'train.lr' is not STEP.NAME=VALUE"]),
    ("train.lr=", 2, ["'train.lr=': no VALUE"]),
    ("train.lr=[0.1", 2, ["'train.lr=[0.1': VALUE '[0.1' is not valid YAML"]),
    ("train.note=a: b", 2, ["VALUE 'a: b' reads as a YAML block collection"]),
    # anchors and aliases: a few bytes that expand to gigabytes ("billion laughs")
    ("train.features=[&a [x, x], [*a, *a]]", 2, ["YAML aliases (*name) are not allowed"]),
]


@pytest.mark.parametrize(("param", "code", "messages"), BAD_PARAMS, ids=[p for p, *_ in BAD_PARAMS])
def test_a_bad_param_is_refused_by_name_before_anything_runs(
    cli: Cli, workdir: Path, param: str, code: int, messages: list[str]
) -> None:
    recipe = make_recipe(workdir / "tunable")
    result = cli("run", str(recipe), "--param", "train.n_estimators=5", "--param", param)
    assert result.returncode == code, result.stdout + result.stderr
    for message in messages:
        assert message in result.stderr
    assert "train.n_estimators=5" not in result.stderr  # only the offending one is named
    assert not list(recipe.glob("*.received.json"))  # no step ran
    assert not (workdir / ".mlstack").exists()  # no spine, no run, no tracking store


def test_a_recipe_param_of_the_wrong_type_is_refused_at_its_line(cli: Cli, workdir: Path) -> None:
    recipe = make_recipe(workdir / "tunable")
    text = (recipe / "recipe.yaml").read_text().replace("{rows: 3}", "{rows: '3'}")
    (recipe / "recipe.yaml").write_text(text)
    result = cli("run", str(recipe))
    assert result.returncode == 1
    assert "recipe.yaml:4: steps.0.params.rows: rows = '3' is str, but the step takes " in (
        result.stderr
    )
    assert not (workdir / ".mlstack").exists()
    # `str | None` takes null; an unannotated param (features) takes anything
    fixed = text.replace("{rows: '3'}", "{rows: 3}")
    (recipe / "recipe.yaml").write_text(fixed)
    cli("run", str(recipe), "-P", "train.note=null", "-P", "train.features=7", check=True)
    assert received(recipe, "train")["note"] == ["NoneType", None]


def test_the_same_param_twice_is_refused(cli: Cli, workdir: Path) -> None:
    recipe = make_recipe(workdir / "tunable")
    result = cli("run", str(recipe), "-P", "train.lr=0.2", "-P", "train.lr=0.3")
    assert result.returncode == 1
    assert "--param train.lr=0.3: train.lr is given twice" in result.stderr
    assert not (workdir / ".mlstack").exists()


def test_a_resumed_run_keeps_the_params_of_the_run_it_resumes(cli: Cli, workdir: Path) -> None:
    recipe = make_recipe(workdir / "tunable")
    (recipe / "fail.flag").write_text("")
    failed = cli("run", str(recipe), "-q", "-P", "prepare.rows=5", "-P", "train.lr=0.5")
    assert failed.returncode == 1
    run_id = failed.stderr.split("--resume ")[1].split()[0]
    (recipe / "fixed.flag").write_text("")

    other = cli("run", str(recipe), "--resume", run_id, "-P", "train.lr=0.7")
    assert other.returncode == 1
    assert f"cannot resume run {run_id} with other params" in other.stderr
    assert "started with --param prepare.rows=5 --param train.lr=0.5" in other.stderr
    assert f"--param train.lr=0.7: run {run_id} had --param train.lr=0.5" in other.stderr
    more = cli("run", str(recipe), "--resume", run_id, "-P", "train.n_estimators=1")
    assert more.returncode == 1
    assert f"run {run_id} had no --param train.n_estimators" in more.stderr
    assert not (recipe / "train.received.json").exists()
    assert len(cli("runs", check=True).stdout.split("tunable  ")) == 2  # no run recorded

    resumed = cli("run", str(recipe), "--resume", run_id, check=True)
    assert "↺ prepare" in resumed.stdout
    assert received(recipe, "train")["lr"] == ["float", 0.5]
    runs = cli("runs", check=True).stdout
    assert f"(resumes {run_id})" in runs
    assert runs.count("params  prepare.rows=5 train.lr=0.5") == 2  # both runs say so


def test_resuming_with_the_same_params_again_is_accepted(cli: Cli, workdir: Path) -> None:
    recipe = make_recipe(workdir / "tunable")
    (recipe / "fail.flag").write_text("")
    failed = cli("run", str(recipe), "-q", "-P", "train.lr=0.5", "-P", "train.warm=true")
    run_id = failed.stderr.split("--resume ")[1].split()[0]
    (recipe / "fixed.flag").write_text("")
    # The failed command line, --resume added (0.50 is the same float as 0.5).
    cli("run", str(recipe), "-q", "-P", "train.lr=0.50", "--resume", run_id, check=True)
    train = received(recipe, "train")
    assert (train["lr"], train["warm"]) == (["float", 0.5], ["bool", True])


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("train.n=300", 300),
        ("train.n=0x10", 16),
        ("train.lr=1.0e-3", 0.001),
        ("train.lr=1e-3", "1e-3"),  # YAML 1.1 needs the dot, in the recipe file too
        ("train.on=yes", True),  # YAML 1.1, as PyYAML reads the recipe file
        ("train.x=null", None),
        ("train.x=~", None),
        ("train.s='300'", "300"),
        ("train.s=hello world", "hello world"),
        ("train.d=2026-01-31", datetime.date(2026, 1, 31)),
        ("train.m={a: 1, b: [x]}", {"a": 1, "b": ["x"]}),
        ("train.u=http://h:5000/x", "http://h:5000/x"),
        ("train.e=a=b", "a=b"),  # the first = splits
    ],
)
def test_values_are_typed_as_the_recipe_file_types_them(option: str, value: Any) -> None:
    parsed = parse_override(option).value
    assert type(parsed) is type(value)
    assert parsed == value


def test_special_floats_and_malformed_values() -> None:
    assert math.isnan(parse_override("train.lr=.nan").value)
    assert parse_override("train.lr=-.inf").value == -math.inf
    for option in ("train.x=- a", "train.x=a\n---\nb", "train.x=!!python/name:os.system", ".x=1"):
        with pytest.raises(MalformedOverride):
            parse_override(option)
