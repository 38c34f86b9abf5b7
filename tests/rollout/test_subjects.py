"""An endpoint is named within its target: this machine's `churn` and the cluster's `churn`
are audited under subjects that never meet, and each reads back as the endpoint it was."""

from __future__ import annotations

import pytest

from stack.rollout.subjects import TARGETS, endpoint_key, endpoint_subject, parse_subject


@pytest.mark.parametrize("name", ["churn", "fraud-v2", "a_b"])
def test_each_targets_subject_reads_back_as_its_endpoint(name: str) -> None:
    subjects = {endpoint_subject(name, target) for target in TARGETS}
    assert len(subjects) == len(TARGETS)  # two endpoints, two subjects
    for target in TARGETS:
        assert parse_subject(endpoint_subject(name, target)) == (target, name)


def test_this_machines_subjects_are_as_they_always_were() -> None:
    assert endpoint_subject("churn") == "endpoint:churn"
    assert endpoint_key("churn", "kubernetes") == "kubernetes/churn"
    assert endpoint_subject("churn", "kubernetes") == "endpoint:kubernetes/churn"


@pytest.mark.parametrize("subject", ["churn@2", "run:abc", "endpoint:elsewhere/churn"])
def test_other_subjects_are_no_endpoint(subject: str) -> None:
    assert parse_subject(subject) is None
