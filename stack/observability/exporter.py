"""`mlstack monitor serve`: the monitoring checks' metrics on `GET /metrics`, read from the
spine on every scrape, so that checks run as CronJobs need no pushgateway and no shared
folder: each job records its checks in the spine, and this one long-running process (a
Deployment beside the endpoints, scraped the same way) exports the latest of each.

What it exports is what `mlstack monitor run --textfile-dir` writes (checks.py): for each
model's latest run on each endpoint, one set of series per version, timed by when the check
ran (`mlstack_monitor_check_timestamp_seconds`)."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from stack.observability.checks import record_metrics

if TYPE_CHECKING:
    from stack.spine.monitoring_records import MonitoringRecords

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
log = logging.getLogger("mlstack.monitor.serve")


def latest_metrics(spine: MonitoringRecords) -> bytes:
    """The latest checks in the spine (`MonitoringRecords.latest_checks`), in Prometheus' text
    format."""
    return record_metrics((check.result, check.at.timestamp()) for check in spine.latest_checks())


class MonitorExporter:
    """An HTTP server answering `GET /metrics` from `spine` (and `GET /healthz`); bind with
    `start()` (port 0: any free one, then `port` says which), stop with `close()`."""

    def __init__(self, spine: MonitoringRecords, host: str = "127.0.0.1", port: int = 0) -> None:
        self.spine = spine
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] == "/healthz":
                    self._send(200, "text/plain", b"ok\n")
                    return
                if self.path.split("?", 1)[0] != "/metrics":
                    self._send(404, "text/plain", b"not found: GET /metrics\n")
                    return
                try:
                    body = latest_metrics(exporter.spine)
                except Exception as exc:  # the spine is down: said, and the next scrape tries
                    log.error("reading the spine failed: %s", exc)
                    self._send(503, "text/plain", f"reading the spine failed: {exc}\n".encode())
                    return
                self._send(200, CONTENT_TYPE, body)

            def _send(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def start(self) -> MonitorExporter:
        """Serve in a thread (tests, embedding); returns self."""
        threading.Thread(target=self.serve_forever, name="monitor-exporter", daemon=True).start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
