"""The monitoring loop: windows of logged predictions against the training reference, late
labels joined to them, policies that turn a check into a breach, alerts and retraining."""

from stack.monitoring.reference import load_reference, save_reference

__all__ = ["load_reference", "save_reference"]
