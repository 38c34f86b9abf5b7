"""`mlstack schedule` on the local stack prints the crontab line; bad cron is refused;
`mlstack compile` needs an orchestrator that compiles."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import ROOT, Cli


def test_local_schedule_is_a_crontab_line(cli: Cli, workdir: Path) -> None:
    recipe = ROOT / "recipes" / "regression"
    line = cli("schedule", str(recipe), "--cron", "0 2 * * *", check=True).stdout.strip()
    assert line.startswith("0 2 * * * cd ")
    assert f"run {recipe / 'recipe.yaml'}" in line
    assert line.endswith("delivery-time.log 2>&1")


def test_a_bad_cron_is_refused_by_name(cli: Cli, workdir: Path) -> None:
    result = cli("schedule", str(ROOT / "recipes" / "regression"), "--cron", "every night")
    assert result.returncode == 1
    assert "'every night' is not a cron expression" in result.stderr


def test_compile_needs_a_compiling_orchestrator(cli: Cli, workdir: Path) -> None:
    refused = cli("compile", str(ROOT / "recipes" / "regression"), "-o", "p.yaml")
    assert refused.returncode == 1
    assert "only one with the `compile` capability (kfp)" in refused.stderr
    (workdir / "stack.yaml").write_text(
        "name: k\nhome: .mlstack\norchestrator: {adapter: kfp}\n"
        "spine: {url: 'sqlite:///.mlstack/spine.db'}\n"
    )
    compiled = cli("compile", str(ROOT / "recipes" / "regression"), "-o", "p.yaml", check=True)
    assert "compiled delivery-time -> p.yaml" in compiled.stdout
    assert "pipelineInfo" in (workdir / "p.yaml").read_text()
