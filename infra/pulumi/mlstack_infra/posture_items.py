"""The form of a program's security posture (posture.py) and the helpers its per-cloud readers
(posture_aws.py, posture_gcp.py, posture_azure.py) share: an `Item` per resource that matters,
Terraform's blocks read whether given once or as a list of one, taints in one spelling. No
Pulumi here."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mlstack_infra.cloud import TAINT_EFFECTS

_EFFECT_NAMES = {upper: name for name, upper in TAINT_EFFECTS.items()}


@dataclass(frozen=True, order=True)
class Item:
    """One resource's security-relevant settings. `kind` is one of cluster, node_pool,
    bucket, database, ingress (a security group's rule, a VPC firewall rule), identity,
    static_key, kubernetes, addon, network, subnet; `name` its role (`artifacts`, a pool's
    name, a subnet's range, a Kubernetes object as `Kind namespace/name`)."""

    kind: str
    name: str
    settings: tuple[tuple[str, Any], ...] = ()

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.settings).get(key, default)


def item(kind: str, name: str, **settings: Any) -> Item:
    return Item(kind, name, tuple(sorted((k, _freeze(v)) for k, v in settings.items())))


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


class DeclaredLike(Protocol):
    """What Pulumi's mocks record of a resource (policies.Declared)."""

    @property
    def type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def inputs(self) -> Mapping[str, Any]: ...


def one(value: Any) -> Any:
    """A Terraform block given once: a dict, or a list of one (either is valid JSON)."""
    if isinstance(value, list):
        return value[0] if value else {}
    return value if value is not None else {}


def dig(value: Any, *keys: str) -> Any:
    """`value[key1][key2]...`, each block read as `one` reads it; None where one is missing."""
    for key in keys:
        value = one(value).get(key) if isinstance(one(value), Mapping) else None
        if value is None:
            return None
    return value


def document(text: Any) -> Any:
    """A JSON document that may carry Terraform expressions (`"${replace(x, "a", "")}:sub"`)."""
    if not isinstance(text, str):
        return text or {}
    return json.loads(re.sub(r"\$\{[^}]*\}", "EXPR", text))


def taint_strings(taints: Iterable[Any]) -> tuple[str, ...]:
    """`key=value:Effect`, whatever the cloud's spelling (dicts, upper snake effects, strings)."""
    found = []
    for taint in taints or ():
        if isinstance(taint, str):
            found.append(taint)
            continue
        effect = _EFFECT_NAMES.get(taint.get("effect"), taint.get("effect"))
        found.append(f"{taint['key']}={taint.get('value') or ''}:{effect}")
    return tuple(sorted(found))


def node_pool(labels: Mapping[str, str], **settings: Any) -> Item:
    return item(
        "node_pool",
        labels.get("mlstack.io/pool", "?"),
        labels=dict(labels),
        **{**settings, "taints": taint_strings(settings.get("taints") or ())},
    )


Of = Callable[[str], list[Mapping[str, Any]]]
