"""Bad values of options that take a duration, seconds or canary steps: a usage error (exit
2) naming the option and what it allows, before any stack is opened; never a traceback or
a pydantic error block."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Cli

CASES = [
    (("monitor", "run", "churn", "--window", "0s"), "'--window': a duration must be positive"),
    (("monitor", "run", "churn", "--window", "-5m"), "'--window': '-5m' is not a duration"),
    (("monitor", "run", "churn", "--window", "abc"), "'--window': 'abc' is not a duration"),
    (("monitor", "run", "churn", "--every", "-1"), "'--every': '-1': give a number of seconds"),
    (("monitor", "run", "churn", "--count", "0"), "'--count': 0 is not in the range x>=1"),
    (("cost", "--period", "0s"), "'--period': a duration must be positive"),
    (("deploy", "churn@5", "--steps", "0,50,200"), "'--steps': '0,50,200': each step must be"),
    (("deploy", "churn@5", "--steps", "50,10"), "'--steps': '50,10': the steps must increase"),
    (("deploy", "churn@5", "--steps", "10,50"), "the last step must be all traffic"),
    (("deploy", "churn@5", "--bake", "-1"), "'--bake': '-1': give a number of seconds, 0 or"),
    (("deploy", "churn@5", "--bake", "nan"), "'--bake': 'nan': give a number of seconds"),
    (("deploy", "churn@5", "--hold", "-5"), "'--hold': '-5': give a number of seconds"),
]


@pytest.mark.parametrize(("args", "expected"), CASES, ids=lambda v: " ".join(v)[:40])
def test_a_bad_option_value_is_a_usage_error_naming_the_option(
    cli: Cli, workdir: Path, args: tuple[str, ...], expected: str
) -> None:
    result = cli(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr
    for noise in ("Traceback", "errors.pydantic.dev", "validation error"):
        assert noise not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 4  # usage, hint, blank, the error
    assert not (workdir / ".mlstack").exists()  # refused before the stack was opened
