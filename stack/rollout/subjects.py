"""Where an endpoint's events are recorded: its audit subject and its lineage revisions.

An endpoint is named within its target: `churn` on this machine and `churn` on the cluster
are two endpoints, each with its own traffic history, rollouts and revisions, so that
`rollout status|history`, `doctor` and a rollback read the one they act on. A local
endpoint's subject is `endpoint:NAME` (as it always was); a cluster endpoint's is
`endpoint:kubernetes/NAME`, its revisions `kubernetes/NAME#N` in lineage. Endpoint names
hold letters, digits, `-` and `_`, never `/`, so the two cannot meet. Entries a cluster
endpoint wrote before this was so (mlstack 0.1's) stand under `endpoint:NAME`.
"""

from __future__ import annotations

from typing import Final, Literal

from stack.contract.roles import Role
from stack.contract.serving import Router
from stack.session import StackSession

Target = Literal["local", "kubernetes"]

LOCAL: Final = "local"
KUBERNETES: Final = "kubernetes"
#: Where endpoints run, as `--target` names them.
TARGETS: tuple[Target, ...] = (LOCAL, KUBERNETES)

SUBJECT_PREFIX: Final = "endpoint:"


def target_of(session: StackSession, router: Router | None) -> Target:
    """`local` for the stack's own server (`router` None, or the server itself), else
    `kubernetes`: the only other router is the cluster's (`ClusterManifests.cluster_router`)."""
    if router is None or router is session.opened(Role.SERVER):
        return LOCAL
    return KUBERNETES


def endpoint_key(name: str, target: Target = LOCAL) -> str:
    """`churn` on this machine, `kubernetes/churn` on the cluster."""
    return name if target == LOCAL else f"{target}/{name}"


def endpoint_subject(name: str, target: Target = LOCAL) -> str:
    """The audit subject of endpoint `name` on `target` (`endpoint:churn`,
    `endpoint:kubernetes/churn`)."""
    return SUBJECT_PREFIX + endpoint_key(name, target)


def parse_subject(subject: str) -> tuple[Target, str] | None:
    """`(target, name)` of an endpoint's audit subject; None for any other subject."""
    if not subject.startswith(SUBJECT_PREFIX):
        return None
    key = subject.removeprefix(SUBJECT_PREFIX)
    target, slash, name = key.partition("/")
    if not slash:
        return LOCAL, key
    return (KUBERNETES, name) if target == KUBERNETES else None
