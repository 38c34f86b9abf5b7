"""Signed anchors: the audit chain's head, signed with a key the spine's writers do not hold
and kept outside the spine, so that a log cut short, wiped or rewritten no longer matches.

An anchors file holds one JSON object a line: `{"seq", "hash", "at", "key", "signature"}`.
`signature` is Ed25519 (base64) over `mlstack-audit-anchor/1` and the canonical JSON of
`seq`, `hash` and `at`; `key` is the signing key's fingerprint (SHA-256 of its raw public
bytes, 16 hex digits). Keys are PEM files: PKCS#8 private, SubjectPublicKeyInfo public, as
`mlstack audit keygen` or `openssl genpkey -algorithm ed25519` write them.

`cryptography` is imported only by the functions that sign or check.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stack.errors import StackError
from stack.spine.audit import AuditFinding, Tampering
from stack.spine.timeutil import from_text, now_utc, to_text

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

_DOMAIN = b"mlstack-audit-anchor/1\n"


class AnchorError(StackError):
    """A key or anchors file cannot be used (missing, unreadable, not Ed25519); the message
    names the file."""


@dataclass(frozen=True, slots=True)
class Anchor:
    """The chain head at one moment: entry `seq` had hash `hash` when signed `at` (UTC)."""

    seq: int
    hash: str
    at: datetime


@dataclass(frozen=True, slots=True)
class AnchorFile:
    """The anchors whose signatures hold, and a finding for each line that does not."""

    anchors: tuple[Anchor, ...]
    findings: tuple[AuditFinding, ...]

    @property
    def latest(self) -> Anchor | None:
        return max(self.anchors, key=lambda a: a.seq, default=None)


def require_cryptography() -> None:
    """Raise AnchorError saying what to install when `cryptography` is missing."""
    try:
        import cryptography  # noqa: F401
    except ImportError as exc:
        raise AnchorError(
            "signed audit anchors need the `cryptography` package: pip install cryptography"
        ) from exc


def generate_keypair(private_path: Path, public_path: Path) -> str:
    """Write a new Ed25519 key pair (the private key readable by its owner only) and return
    its fingerprint. Refuses to overwrite either file."""
    require_cryptography()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    for path in (private_path, public_path):
        if path.exists():
            raise AnchorError(f"{path} exists: not overwritten (remove it, or pick another path)")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for path, content, mode in (
        (private_path, private_pem, 0o600),
        (public_path, public_pem, 0o644),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
    return fingerprint(key.public_key())


def fingerprint(key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_private_key(path: Path) -> Ed25519PrivateKey:
    require_cryptography()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = _load(path, "private", lambda data: load_pem_private_key(data, password=None))
    if not isinstance(key, Ed25519PrivateKey):
        raise AnchorError(f"{path}: a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    require_cryptography()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key = _load(path, "public", load_pem_public_key)
    if not isinstance(key, Ed25519PublicKey):
        raise AnchorError(f"{path}: a {type(key).__name__}, not an Ed25519 public key")
    return key


def _load(path: Path, kind: str, parse: Any) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AnchorError(f"cannot read the {kind} key {path}: {exc.strerror or exc}") from exc
    try:
        return parse(data)
    except (ValueError, TypeError) as exc:
        raise AnchorError(
            f"{path}: not a PEM {kind} key ({exc}); create one with `mlstack audit keygen`"
        ) from exc


def sign(seq: int, head_hash: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """The anchors-file record for chain head (`seq`, `head_hash`), signed now."""
    body = {"seq": seq, "hash": head_hash, "at": to_text(now_utc())}
    signature = key.sign(_DOMAIN + _canonical(body))
    return {
        **body,
        "key": fingerprint(key.public_key()),
        "signature": base64.b64encode(signature).decode("ascii"),
    }


def append(path: Path, record: dict[str, Any]) -> None:
    """Add one record to the anchors file, flushed to disk before returning."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read(path: Path, key: Ed25519PublicKey) -> AnchorFile:
    """Every anchor in `path` whose signature `key` verifies; a finding for each other line
    (malformed, signed by another key, or edited since it was signed), for an anchor of an
    earlier entry than a line before it (the log was cut back between two anchorings), and
    for a file with no anchor at all. Raises AnchorError when the file cannot be read."""
    from cryptography.exceptions import InvalidSignature

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise AnchorError(
            f"no anchors file at {path}: sign one with `mlstack audit anchor`, or give the "
            "path the anchors were exported to (--anchors); if it was there, it was removed"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise AnchorError(f"cannot read the anchors file {path}: {exc}") from exc
    ours = fingerprint(key)
    anchors: list[Anchor] = []
    findings: list[AuditFinding] = []

    def bad(number: int, what: str) -> None:
        findings.append(AuditFinding(Tampering.ANCHOR, 0, 0, f"{path}:{number}: {what}"))

    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            anchor = Anchor(int(record["seq"]), str(record["hash"]), from_text(record["at"]))
            signature = base64.b64decode(record["signature"], validate=True)
            signer = str(record.get("key", "?"))
        except (ValueError, KeyError, TypeError) as exc:
            bad(number, f"not an anchor ({type(exc).__name__}: {exc})")
            continue
        body = {"seq": anchor.seq, "hash": anchor.hash, "at": record["at"]}
        try:
            key.verify(signature, _DOMAIN + _canonical(body))
        except InvalidSignature:
            if signer != ours:
                bad(number, f"signed by key {signer}, not by the public key given ({ours})")
            else:
                bad(number, "its signature does not verify: edited after it was signed")
            continue
        if anchors and anchor.seq < anchors[-1].seq:
            bad(
                number,
                f"anchors entry {anchor.seq} after entry {anchors[-1].seq} was anchored: the "
                "log was cut back between the two",
            )
        anchors.append(anchor)
    if not lines or not any(line.strip() for line in lines):
        findings.append(
            AuditFinding(
                Tampering.ANCHOR, 0, 0, f"{path}: holds no anchor (emptied, or never signed)"
            )
        )
    return AnchorFile(tuple(anchors), tuple(findings))


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
