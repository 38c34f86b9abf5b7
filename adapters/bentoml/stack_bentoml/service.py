"""The BentoML service `bentoml serve` runs for an endpoint; no hand-written file per model.

Which endpoint it serves comes from `MLSTACK_ENDPOINT_SPEC` (the endpoint file), how many
workers from `MLSTACK_WORKERS`; each worker exits with the server (lineage.py). BentoML's
access log, metrics and tracing are off for the hot route: the prediction log records every
request, and they cost more CPU than the predict."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import bentoml

from stack_bentoml.app import PredictionApp
from stack_bentoml.lineage import exit_with_parent
from stack_bentoml.readiness import DegradedReadiness
from stack_bentoml.timeouts import install as install_request_timeout

SPEC_ENV = "MLSTACK_ENDPOINT_SPEC"
WORKERS_ENV = "MLSTACK_WORKERS"

install_request_timeout()  # BentoML's own leaves a timer per request for the whole timeout
prediction_app = PredictionApp(Path(os.environ.get(SPEC_ENV, "endpoint.json")))


@bentoml.asgi_app(prediction_app, path="/")
@bentoml.service(
    name="mlstack-endpoint",
    workers=int(os.environ.get(WORKERS_ENV, "1")),
    logging={"access": {"enabled": False}},
    metrics={"enabled": False},
    tracing={"sample_rate": 0.0, "excluded_urls": ["/predict"]},
    traffic={"timeout": 60},
)
class MlstackEndpoint:
    def __init__(self) -> None:  # in each worker (the server itself never builds one)
        exit_with_parent()  # a worker outliving its server would answer on, unmanaged
        prediction_app.start()  # load the versions, start the log writer

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]
    def shutdown(self) -> None:
        prediction_app.close()  # write what the log holds before the worker exits


# `/readyz` says why a worker that answers is degraded (a prediction log refusing rows).
# The decorators made the class a bentoml Service, which its type hints do not say.
service: Any = MlstackEndpoint
service.add_asgi_middleware(DegradedReadiness, reasons=prediction_app.degraded)
