"""The spine store: lineage, lifecycle events, approvals, pipeline runs and the audit log."""

from stack.spine.audit import AuditEntry, AuditVerification
from stack.spine.lineage import LineageEdge, NodeKind, NodeRef
from stack.spine.store import SpineStore

__all__ = ["AuditEntry", "AuditVerification", "LineageEdge", "NodeKind", "NodeRef", "SpineStore"]
