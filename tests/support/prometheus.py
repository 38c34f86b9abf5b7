"""Debian's `prometheus` and `prometheus-alertmanager`, run on 127.0.0.1 for a test: installed
when missing (tests/support/debian.py), else the test is skipped saying why."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.debian import installed
from tests.support.ports import free_port

PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
}


def binary(name: str) -> str:
    """The path of `name`, installed from Debian when missing (tests/support/debian.py)."""
    return installed((name,), PACKAGES[name])


@dataclass
class Running:
    """A server started for a test, its HTTP API on `url`."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=5)
        response.raise_for_status()
        return response.json()

    def query(self, expression: str) -> list[dict[str, Any]]:
        """Prometheus' instant query: the result vector."""
        answer = self.get("/api/v1/query", query=expression)
        return list(answer["data"]["result"])


def wait_for(what: str, check: Callable[[], Any], timeout: float, log: Path | None = None) -> Any:
    """`check()`'s first truthy value, polled until `timeout` seconds; else fail naming
    `what` (and the last lines of `log`)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            last = check()
            if last:
                return last
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    pytest.fail(f"{what}: not within {timeout} s (last: {last!r})\n{tail}")


@contextlib.contextmanager
def _serve(command: list[str], url: str, ready: str, log: Path) -> Iterator[Running]:
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    running = Running(url, process, log)
    try:
        wait_for(
            f"{command[0]} ready", lambda: httpx.get(url + ready, timeout=2).is_success, 60, log
        )
        yield running
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def prometheus(
    folder: Path,
    targets: list[str],
    *,
    rules: list[Path] = (),  # type: ignore[assignment]
    alertmanager: str | None = None,
    interval: str = "1s",
) -> Iterator[Running]:
    """Prometheus scraping `targets` (host:port) every `interval`, evaluating `rules`, sending
    alerts to `alertmanager` (host:port)."""
    folder.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [{"job_name": "mlstack", "static_configs": [{"targets": targets}]}],
        "rule_files": [str(path) for path in rules],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    command = [
        binary("prometheus"),
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    url = f"http://127.0.0.1:{port}"
    with _serve(command, url, "/-/ready", folder / "prometheus.log") as running:
        yield running


@contextlib.contextmanager
def alertmanager(folder: Path, webhook: str, *, group_wait: str = "1s") -> Iterator[Running]:
    """Alertmanager routing every alert to `webhook` (a URL), grouped for `group_wait`."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "route": {
            "receiver": "test",
            "group_by": ["alertname"],
            "group_wait": group_wait,
            "group_interval": "2s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {"name": "test", "webhook_configs": [{"url": webhook, "send_resolved": True}]}
        ],
    }
    (folder / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    command = [
        binary("prometheus-alertmanager"),
        f"--config.file={folder / 'alertmanager.yml'}",
        f"--storage.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # alone: no gossip port
    ]
    url = f"http://127.0.0.1:{port}"
    with _serve(command, url, "/-/ready", folder / "alertmanager.log") as running:
        yield running


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: every JSON body POSTed to `url`, in order."""

    url: str
    bodies: list[Any]


@contextlib.contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bodies: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/alerts", bodies)
    finally:
        server.shutdown()
        server.server_close()


def shipped_rules(folder: Path, *, hold: str = "0s") -> Path:
    """mlstack's rules file with every rule's `for:` set to `hold` (a test cannot wait the
    shipped minutes), written in `folder`."""
    from importlib.resources import files

    rules = yaml.safe_load(files("stack.observability").joinpath("rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = hold
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    return path
