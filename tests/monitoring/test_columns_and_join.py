"""What a check can compare, and which prediction a late label belongs to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stack.contract.serving import LoggedRequest
from stack.monitoring.columns import plan_columns, prediction_labels, prediction_scores
from stack.monitoring.window import join_labels, split_by_version
from stack.spine.records import GroundTruth

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_columns_that_cannot_be_compared_are_named_with_the_reason() -> None:
    reference = {"a": [1.0, 2.0], "b": ["x", "y"], "c": [1.0, None], "d": [None, None]}
    current = {"a": [1.0, 3.0], "b": [1.5, 2.5], "c": [None, float("nan")], "d": [1.0, 2.0]}
    plan = plan_columns(reference, current, ["a", "b", "c", "d", "e", "gone"])
    assert plan.usable == ["a"]
    assert plan.problems == [
        "column 'b' changed type: text in the reference, numeric in the window",
        "column 'c' has no value in the window (all missing): drift not compared",
        "column 'd' has no value in the reference: drift not compared",
        "column 'e' is not in the reference; not checked",
        "column 'gone' is not in the reference; not checked",
    ]
    # what quality still reports: an empty window column is 100% missing
    assert plan.missing == {"c": 1.0, "d": 0.0}
    renamed = plan_columns({"tenure": [1.0]}, {"tenure_months": [1.0]}, ["tenure"])
    assert renamed.problems == [
        "column 'tenure' is missing from the window (renamed or dropped?): 100% missing, "
        "drift not compared"
    ]
    assert renamed.missing == {"tenure": 1.0}


def request(request_id: str, at: datetime, customer: int, answer: int) -> LoggedRequest:
    return LoggedRequest(
        request_id, at, "churn@1", "live", 200, ({"customer": customer, "x": 1.0},), (answer,)
    )


def test_class_probabilities_are_scores_for_drift_and_classes_for_performance() -> None:
    served = [[0.9, 0.1], [0.3, 0.7], [0.2, 0.5, 0.3], 1, "yes", None]
    assert prediction_scores(served) == [0.1, 0.7, 0.5, 1, "yes", None]
    assert prediction_labels(served) == [0, 1, 1, 1, "yes", None]
    assert prediction_labels([[0.5, 0.5]]) == [0]  # a tie goes to the first class, as argmax


def test_labels_join_by_request_id_and_by_entity_within_the_window() -> None:
    windows = split_by_version(
        [
            request("r1", T0, 7, 1),
            request("r2", T0 + timedelta(hours=1), 7, 0),  # the latest for customer 7
            request("r3", T0 + timedelta(hours=2), 8, 1),
            LoggedRequest("r4", T0, "churn@1", "live", 500, ({"customer": 9},), (None,)),
            LoggedRequest("r5", T0, "churn@2", "shadow", 200, ({"customer": 9},), (1,)),
        ],
        until=T0 + timedelta(days=1),
    )
    assert list(windows) == ["churn@1"]  # failures and shadow copies are not answers
    labels = [
        GroundTruth("churn", 1, T0 + timedelta(hours=3), "csv", entity={"customer": "7"}),
        GroundTruth("churn", 0, T0 + timedelta(days=30), "csv", entity={"customer": "8"}),
        GroundTruth("churn", 1, T0 + timedelta(hours=5), "csv", request_id="r1"),
        GroundTruth("churn", 0, T0 + timedelta(hours=6), "feedback", request_id="r1"),
        GroundTruth("churn", 1, T0, "csv", request_id="unknown"),
    ]
    stats = join_labels(windows, labels, entity=["customer"], join_window=timedelta(days=7))
    window = windows["churn@1"]
    # r1: the later label wins; r2: customer 7's label; r3: its label came 30 days on, too late
    assert window.labels == [0, 1, None]
    # r1's two labels (by CSV, then /feedback) are one label of one prediction: counted once
    assert (stats.labels, stats.matched, stats.unmatched) == (4, 2, 2)
