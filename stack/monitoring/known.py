"""What monitoring commands check a name against before acting on it: a model the registry
knows (a misspelt model in a cron job must fail, not report an empty window forever), and
the request ids a label file names (a label for a request never answered joins nothing)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from stack.errors import StackError
from stack.session import StackSession
from stack.spine.records import GroundTruth


def require_model(session: StackSession, model: str) -> None:
    """Raise StackError naming the registry's models (and the closest one) unless `model` is
    one of them."""
    known = session.registry.models()
    if model in known:
        return
    close = difflib.get_close_matches(model, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(known) if known else "none yet"
    raise StackError(f"no model {model!r} in the registry (known models: {listed}){hint}")


def unlogged_request_ids(labels: Iterable[GroundTruth], answered: set[str]) -> list[str]:
    """The distinct request ids the labels name that are not in `answered`, in file order
    (labels matched by entity key name no request and are not counted)."""
    seen: dict[str, None] = {}
    for label in labels:
        if label.request_id is not None and label.request_id not in answered:
            seen.setdefault(label.request_id, None)
    return list(seen)


def describe_unlogged(ids: Sequence[str], endpoint: str, *, shown: int = 10) -> str:
    """One line for the ingest output: how many ids, the first `shown` of them."""
    names = ", ".join(ids[:shown]) + (f" and {len(ids) - shown} more" if len(ids) > shown else "")
    return (
        f"{len(ids)} request id(s) were never answered on endpoint {endpoint!r}: {names} "
        "(stored anyway: a check joins them only to a request logged under that id)"
    )
