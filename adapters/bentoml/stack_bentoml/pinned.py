"""One probe request, pinned to a version, and what became of it on the way.

A rollout controller sends these during a bake (stack/rollout/probes.py) to see failures
the endpoint's log cannot hold: a reset connection (a worker that died mid-request), a
refused one, an answer that never came. The body is the version's own input example; the
request is tagged `x-mlstack-traffic: probe` (no rollout health, no monitoring window
counts it) and names its version in `x-mlstack-version` (traffic.py)."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

from stack_bentoml.traffic import TRAFFIC_HEADER, VERSION_HEADER


def send_probe(url: str, ref: str, body: bytes, timeout_s: float) -> str | None:
    """POST `body` to `url`/predict for `ref`: None when any HTTP answer came back; else why
    none did (`connection refused`, `connection reset`, `no answer within 15 s`, ...)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)
    headers = {
        "content-type": "application/json",
        TRAFFIC_HEADER: "probe",
        VERSION_HEADER: ref,
    }
    try:
        connection.request("POST", "/predict", body, headers)
        connection.getresponse().read()
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except ConnectionRefusedError:
        return "connection refused"
    except (ConnectionResetError, BrokenPipeError):  # RemoteDisconnected is one
        return "connection reset"
    except http.client.HTTPException as exc:
        return f"broken answer ({type(exc).__name__})"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    finally:
        connection.close()
    return None
