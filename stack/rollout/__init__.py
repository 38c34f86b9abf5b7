"""Rollout: how a model version reaches live traffic, judged against SLOs, rolled back on a
breach. The core owns it; the Server role only loads versions and applies traffic splits."""

from stack.rollout.controller import BakeTick, RolloutController, RolloutResult
from stack.rollout.judge import breaches

__all__ = ["BakeTick", "RolloutController", "RolloutResult", "breaches"]
