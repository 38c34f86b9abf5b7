"""What a request is, as its client tags it: the `x-mlstack-traffic` header.

`live` (the default: real users), `bake` (sent to exercise a rollout), `test` and
`synthetic`. The tag is logged with the prediction; monitoring windows keep only `live` by
default (`monitoring.include_traffic`), and a rollout's health counts every kind but
`test`."""

from __future__ import annotations

from stack.contract.serving import TRAFFIC_KINDS

__all__ = ["NOT_JUDGED", "TRAFFIC_HEADER", "TRAFFIC_KINDS", "traffic_of"]

TRAFFIC_HEADER = "x-mlstack-traffic"
_KINDS = {kind.encode(): kind for kind in TRAFFIC_KINDS}
#: Kinds a rollout's health (and its judge) leaves out.
NOT_JUDGED = frozenset({"test"})


def traffic_of(value: bytes | None) -> str:
    """The kind a request's header names (`live` without one); ValueError naming the
    header and the kinds it takes for any other value."""
    if value is None:
        return "live"
    kind = _KINDS.get(value.strip().lower())
    if kind is None:
        shown = value.decode("latin-1")[:40]
        raise ValueError(
            f"header {TRAFFIC_HEADER}: {shown!r} is not one of {', '.join(TRAFFIC_KINDS)}"
        )
    return kind
