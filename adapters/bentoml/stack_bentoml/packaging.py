"""Packaging for the cluster: a version served as an endpoint, built into a bento offline
(`bentoml build`; packages listed, not locked against an index) for the image to run."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from stack.contract.registry import ModelVersion
from stack.errors import StackError
from stack_bentoml.config import BentoConfig
from stack_bentoml.spec import SPEC_FILE, EndpointSpec, VersionSpec, write_spec


def build_bento(
    config: BentoConfig,
    version: ModelVersion,
    loaded: VersionSpec,
    *,
    endpoint: str,
    bentoml_env: Mapping[str, str],
) -> str:
    """Build `version` (imported into BentoML's store as `loaded`) served alone as
    `endpoint`; returns the bento's tag. StackError with BentoML's last output on failure."""
    import yaml

    spec = EndpointSpec(
        name=endpoint,
        revision=1,
        host="0.0.0.0",
        port=3000,
        versions={version.ref: loaded.model_copy(update={"model_dir": ""})},
        weights={version.ref: 1.0},
        ab_header=config.ab_header,
        log_dir="/tmp/mlstack-predictions",
        # on a cluster the pods write the stack's PostgreSQL log (URL from the environment,
        # by a Secret reference: server.kubernetes.secrets), the rollout's evidence
        log_table=config.prediction_log.table if config.prediction_log else None,
        max_body_bytes=config.max_body_bytes,
        max_rows=config.max_rows,
        log_flush_seconds=config.log_flush_seconds,
    )
    bentofile = {
        "service": "service:MlstackEndpoint",
        "name": f"mlstack-{endpoint.lower()}",
        "labels": {"mlstack.model": version.model, "mlstack.version": str(version.version)},
        "include": ["service.py", SPEC_FILE],
        "models": [loaded.model_tag],
        "envs": [{"name": "MLSTACK_ENDPOINT_SPEC", "value": SPEC_FILE}],
        "python": {"packages": ["mlstack-bentoml"], "lock_packages": False},
    }
    with tempfile.TemporaryDirectory(prefix="mlstack-bento-") as scratch:
        context = Path(scratch)
        (context / "service.py").write_text(
            "from stack_bentoml.service import MlstackEndpoint\n\n__all__ = ['MlstackEndpoint']\n"
        )
        write_spec(spec, context / SPEC_FILE)
        (context / "bentofile.yaml").write_text(yaml.safe_dump(bentofile, sort_keys=False))
        built = subprocess.run(
            [
                sys.executable,
                "-m",
                "bentoml",
                "build",
                str(context),
                "--version",
                f"v{version.version}",
                "--output",
                "tag",
            ],
            cwd=context,
            env={**os.environ, **bentoml_env},
            capture_output=True,
            text=True,
            timeout=600,
        )
    if built.returncode != 0:
        raise StackError(f"bentoml build of {version.ref} failed:\n{built.stderr[-3000:]}")
    return built.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
