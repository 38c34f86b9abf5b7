"""The monitoring loop: windows of logged predictions against the training reference, late
labels joined to them, policies that turn a check into a breach, alerts and retraining."""

from stack.monitoring.batch import BatchPredictionLog, batch_root
from stack.monitoring.reference import load_reference, save_reference

__all__ = ["BatchPredictionLog", "batch_root", "load_reference", "save_reference"]
