"""The local generator's HTTP face: OpenAI's chat completions API over a GGUF model run by
cyllama's `LLM` (a prebuilt llama.cpp), on 127.0.0.1.

Why not cyllama's own `cyllama server`: in cyllama 0.2.18 its server keeps the previous
request's tokens in the context, so every request after the first fails to decode and is
answered with empty text (200, zero completion tokens). cyllama's `LLM.chat` clears its
context per call and applies the model's chat template, so this module serves that: one
generation at a time (the model is small and fast; the lock keeps its context consistent).
A bad request is a 400 naming the field; the server never answers a failure with empty text.
`handler_for` serves any `ChatModel` (the RAG recipe's tests serve a scripted one through it).

Run: `python -m stack_llm_local.server --model FILE.gguf --port N` (as
`stack_llm_local.generator` does)."""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_BODY = 1_048_576


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # response_format, n, stream=false… are ignored

    model: str = "smollm2"
    messages: list[Message] = Field(min_length=1)
    max_tokens: int = Field(default=256, ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    stream: Literal[False] = False


class ChatModel(Protocol):
    """What the server answers with: the model id it answers as, and a chat completion (the
    payload `completion` builds)."""

    name: str

    def chat(self, request: ChatRequest) -> dict[str, Any]: ...


def completion(
    request: ChatRequest,
    text: str,
    *,
    finish_reason: str = "stop",
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
) -> dict[str, Any]:
    """OpenAI's chat completion object answering `request` with `text` (token counts as the
    model gave them)."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class Generator:
    """A GGUF model run by cyllama, one generation at a time."""

    def __init__(self, model_path: str, name: str) -> None:
        from cyllama import LLM

        self.name = name
        self.llm = LLM(model_path)
        self.lock = threading.Lock()

    def chat(self, request: ChatRequest) -> dict[str, Any]:
        from cyllama import GenerationConfig

        config = GenerationConfig(max_tokens=request.max_tokens, temperature=request.temperature)
        messages = [m.model_dump() for m in request.messages]
        with self.lock:
            response = self.llm.chat(messages, config=config)
        stats = response.stats
        return completion(
            request,
            response.text.strip(),
            finish_reason=response.finish_reason,
            prompt_tokens=stats.prompt_tokens if stats else 0,
            completion_tokens=stats.generated_tokens if stats else 0,
        )


def handler_for(generator: ChatModel) -> type[BaseHTTPRequestHandler]:
    """The HTTP handler answering OpenAI's `/v1/chat/completions` and `/v1/models` with
    `generator`; a bad request is a 400 naming the field, a failed generation a 500."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                model = {"id": generator.name, "object": "model", "owned_by": "mlstack"}
                self._send(200, {"object": "list", "data": [model]})
            elif self.path == "/health":
                self._send(200, {"status": "ok"})
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._error(404, f"no route {self.path}")
                return
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self._error(413, f"body over {MAX_BODY} bytes")
                return
            try:
                request = ChatRequest.model_validate_json(self.rfile.read(length))
            except ValidationError as exc:
                where = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                    for e in exc.errors()
                )
                self._error(400, where)
                return
            try:
                self._send(200, generator.chat(request))
            except Exception as exc:  # the model failed: say so, never answer empty text
                self._error(500, f"generation failed: {type(exc).__name__}: {exc}")

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"error": {"message": message, "type": "invalid_request_error"}})

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="The GGUF file.")
    parser.add_argument("--name", default="smollm2", help="The model id it answers as.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(
        (args.host, args.port), handler_for(Generator(args.model, args.name))
    )
    print(f"serving {args.name} on http://{args.host}:{args.port}/v1", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
