"""The pods' side of the prediction log, for the cluster router's tests (fake_kube.py plays
the API server and the kubelet; this plays the gateway and the endpoint pods).

Each burst sends requests as the HTTPRoute stored in the fake cluster says now: by its
backend weights, with a copy of each to every RequestMirror backend (the same x-request-id,
as a gateway mirrors it). Each answer is logged by the pod that gave it, as the pods log:
a `live` row through the PredictionLogWriter into the production stack's PostgreSQL table
(PostgresSink), flushed when the burst ends. What a version answers is its image's: an
error share (status 500), and the output it gives."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from stack_bentoml.kubernetes import REF_KEY
from stack_bentoml.postgres_log import PostgresSink
from stack_bentoml.predictlog import Prediction, PredictionLogWriter
from tests.support.fake_kube import FakeCluster

#: The request every burst sends (one record), and what a healthy version answers.
INPUTS = json.dumps([{"tenure": 3, "plan": "basic"}])
ANSWER: Any = [0]
LATENCY_MS = 12.0


@dataclass
class PodTraffic:
    cluster: FakeCluster
    log_url: str
    endpoint: str = "churn"
    table: str = "mlstack_predictions"
    per_burst: int = 200  # requests through the route per burst
    errors: dict[str, float] = field(default_factory=dict)  # share answered 500, by image
    answers: dict[str, Any] = field(default_factory=dict)  # the output, by image
    sent: int = 0
    logged: dict[str, int] = field(default_factory=dict)  # rows, by version ref
    _answered: dict[str, int] = field(default_factory=dict)  # by image, for the error share

    def burst(self, seconds: float = 0.0) -> None:
        """One burst through the route as it is now, every answer in the log when it
        returns (a controller's `sleep`: the traffic of the time it waits)."""
        route = self._route()
        if route is None:
            return
        rule = route["spec"]["rules"][0]
        backends = [(b["name"], int(b["weight"])) for b in rule["backendRefs"] if b["weight"]]
        mirrors = [
            f["requestMirror"]["backendRef"]["name"]
            for f in rule.get("filters") or []
            if f["type"] == "RequestMirror"
        ]
        pods = self._deployments()
        total = sum(weight for _, weight in backends)
        writer = PredictionLogWriter(PostgresSink(self.log_url, self.table), flush_seconds=3600)
        try:
            for name, weight in backends:
                for _ in range(round(self.per_burst * weight / total)):
                    request_id = f"req-{self.sent:07d}"
                    self.sent += 1
                    writer.log(self._answer(request_id, pods[name]))
                    for mirror in mirrors:
                        writer.log(self._answer(request_id, pods[mirror]))
        finally:
            writer.close()  # writes every row queued, then stops
        assert writer.outage() is None, writer.outage()

    def _answer(self, request_id: str, deployment: dict[str, Any]) -> Prediction:
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        ref = deployment["metadata"]["annotations"][REF_KEY]
        index = self._answered.get(image, 0)
        self._answered[image] = index + 1
        share = self.errors.get(image, 0.0)
        failed = int((index + 1) * share) > int(index * share)  # exactly `share` of them
        self.logged[ref] = self.logged.get(ref, 0) + 1
        return Prediction(
            request_id=request_id,
            ts=time.time(),
            endpoint=self.endpoint,
            model_version=ref,
            role="live",  # a pod logs a mirrored copy as an answer of its own
            status=500 if failed else 200,
            latency_ms=LATENCY_MS,
            inputs=INPUTS,
            output=None if failed else self.answers.get(image, ANSWER),
            error="RuntimeError: the model failed" if failed else None,
        )

    def _route(self) -> dict[str, Any] | None:
        for path, obj in self.cluster.objects.items():
            if path.endswith(f"/httproutes/{self.endpoint}"):
                return obj
        return None

    def _deployments(self) -> dict[str, dict[str, Any]]:
        return {
            obj["metadata"]["name"]: obj
            for obj in list(self.cluster.objects.values())
            if obj.get("kind") == "Deployment"
        }
