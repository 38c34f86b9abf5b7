"""Export the spine's lineage as OpenLineage events (the `openlineage-python` client).

Runs (training runs, pipeline runs) become OpenLineage runs whose inputs are what fed them and
whose outputs are what they produced; an edge between two datasets (a model version deployed
to an endpoint revision) becomes a run of a job named after the relation. Events go to a
JSON-lines file by default, or to an OpenLineage HTTP endpoint (Marquez, …) when configured.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stack.spine.lineage import LineageEdge, NodeKind

PRODUCER = "https://github.com/mlstack/mlstack"
_RUN_KINDS = (NodeKind.RUN, NodeKind.PIPELINE_RUN)


def lineage_events(
    edges: list[LineageEdge], *, namespace: str, event_time: datetime | None = None
) -> list[Any]:
    """OpenLineage RunEvents (COMPLETE) describing `edges`."""
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )

    moment = (event_time or datetime.now(UTC)).isoformat()
    unique = list(dict.fromkeys(edges))
    events = []
    runs = {n for e in unique for n in (e.source, e.target) if n.kind in _RUN_KINDS}
    for run in sorted(runs, key=str):
        inputs = [e.source for e in unique if e.target == run and e.source.kind not in _RUN_KINDS]
        outputs = [e.target for e in unique if e.source == run and e.target.kind not in _RUN_KINDS]
        events.append(
            RunEvent(
                eventType=RunState.COMPLETE,
                eventTime=moment,
                producer=PRODUCER,
                run=Run(runId=_run_uuid(run.key)),
                job=Job(namespace=namespace, name=str(run)),
                inputs=[InputDataset(namespace=namespace, name=str(n)) for n in inputs],
                outputs=[OutputDataset(namespace=namespace, name=str(n)) for n in outputs],
            )
        )
    for edge in unique:
        if edge.source.kind in _RUN_KINDS or edge.target.kind in _RUN_KINDS:
            continue
        events.append(
            RunEvent(
                eventType=RunState.COMPLETE,
                eventTime=moment,
                producer=PRODUCER,
                run=Run(runId=_run_uuid(f"{edge.source}|{edge.relation}|{edge.target}")),
                job=Job(namespace=namespace, name=f"{edge.relation}:{edge.target}"),
                inputs=[InputDataset(namespace=namespace, name=str(edge.source))],
                outputs=[OutputDataset(namespace=namespace, name=str(edge.target))],
            )
        )
    return events


def export(
    edges: list[LineageEdge],
    *,
    namespace: str,
    file: Path | None = None,
    url: str | None = None,
    api_key: str | None = None,
) -> int:
    """Emit the events to `url` when given, else append them to `file`; returns how many."""
    from openlineage.client import OpenLineageClient

    transport: Any
    if url:
        from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

        config = HttpConfig(url=url, timeout=10.0)
        if api_key:
            config.auth = ApiKeyTokenProvider({"apiKey": api_key})
        transport = HttpTransport(config)
    else:
        from openlineage.client.transport.file import FileConfig, FileTransport

        assert file is not None
        file.parent.mkdir(parents=True, exist_ok=True)
        transport = FileTransport(FileConfig(log_file_path=str(file), append=True))
    client = OpenLineageClient(transport=transport)
    events = lineage_events(edges, namespace=namespace)
    for event in events:
        client.emit(event)
    return len(events)


def _run_uuid(key: str) -> str:
    """MLflow run ids are UUIDs without dashes; anything else gets a stable UUID5."""
    try:
        return str(uuid.UUID(hex=key))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mlstack:{key}"))
