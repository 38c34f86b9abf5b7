"""`GET /openapi.json`: the endpoint's routes as OpenAPI 3, from its request schema.

Every answer it may give is listed (a client, or a fuzzer, can hold the endpoint to it), and
a link says that the `x-request-id` of an answer is what `/feedback` takes as `request_id`."""

from __future__ import annotations

from typing import Any

from stack_bentoml.feedback import FEEDBACK_SCHEMA
from stack_bentoml.schema import RequestSchema
from stack_bentoml.spec import EndpointSpec
from stack_bentoml.traffic import TRAFFIC_HEADER, TRAFFIC_KINDS

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}}
_FAILED = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "request_id": {"type": "string"}},
}
_REQUEST_ID = {
    "x-request-id": {
        "description": "The request's id: the caller's `x-request-id` when printable "
        "ASCII of at most 128 characters, else a new one.",
        "schema": {"type": "string"},
    }
}


def _answer(description: str, schema: dict[str, Any] = _ERROR) -> dict[str, Any]:
    return {
        "description": description,
        "headers": _REQUEST_ID,
        "content": {"application/json": {"schema": schema}},
    }


_TRAFFIC = {
    "name": TRAFFIC_HEADER,
    "in": "header",
    "required": False,
    "description": "What the request is: live (real users), bake (a rollout's), test, "
    "synthetic, probe (a rollout controller's own). Monitoring keeps live alone by default; "
    "a rollout's health all but test and probe.",
    "schema": {"type": "string", "enum": list(TRAFFIC_KINDS), "default": "live"},
}


def _refusals(what: str, empty: str = "empty body") -> dict[str, Any]:
    return {
        "400": _answer(empty),
        "413": _answer("body over the endpoint's max_body_bytes"),
        "415": _answer("not application/json (UTF-8), or compressed"),
        "422": _answer(f"invalid {what}: the fields at fault, or JSON nested too deep"),
    }


def openapi(spec: EndpointSpec, schema: RequestSchema) -> dict[str, Any]:
    predictions = {
        **_answer("predictions", {"type": "object"}),
        "links": {
            "feedback": {
                "operationId": "feedback",
                "requestBody": {"request_id": "$response.header.x-request-id"},
                "description": "The label of this answer, sent when known.",
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": f"mlstack endpoint {spec.name}", "version": str(spec.revision)},
        "paths": {
            "/predict": {
                "post": {
                    "operationId": "predict",
                    "parameters": [_TRAFFIC],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": schema.openapi_schema()}},
                    },
                    "responses": {
                        "200": predictions,
                        **_refusals("request", f"empty body, or an unknown {TRAFFIC_HEADER}"),
                        "500": _answer(
                            "the model failed on valid input: its error is in the server "
                            "log and the prediction log, under the request id",
                            _FAILED,
                        ),
                    },
                }
            },
            "/feedback": {
                "post": {
                    "operationId": "feedback",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": FEEDBACK_SCHEMA}},
                    },
                    "responses": {
                        "202": _answer("labels accepted", {"type": "object"}),
                        **_refusals("feedback"),
                    },
                }
            },
            "/endpoint": {
                "get": {
                    "operationId": "endpoint",
                    "responses": {
                        "200": _answer("name, revision, weights, shadows, degraded (reasons)")
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "responses": {"200": _answer("this document", {"type": "object"})},
                }
            },
        },
    }
