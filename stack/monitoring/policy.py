"""The recipe's policy applied to one check: the reasons it is a breach (none: it is not)."""

from __future__ import annotations

from collections.abc import Mapping

from stack.config.monitoring import LOWER_IS_BETTER, MonitoringPolicy
from stack.contract.monitoring import DriftReport, PerformanceReport, QualityReport


def breaches(
    policy: MonitoringPolicy,
    *,
    drift: DriftReport | None,
    quality: QualityReport | None,
    performance: PerformanceReport | None,
    baseline: Mapping[str, float],
) -> list[str]:
    found: list[str] = []
    if drift is not None:
        found += _drift(policy, drift)
    if quality is not None:
        found += _quality(policy, quality)
    if performance is not None and policy.performance is not None:
        found += _performance(policy, performance, baseline)
    return found


def _drift(policy: MonitoringPolicy, drift: DriftReport) -> list[str]:
    found: list[str] = []
    drifted = drift.drifted_columns
    limit = policy.max_drifted_share
    if limit is not None and drift.columns and drift.drifted_share >= limit and drifted:
        found.append(
            f"{len(drifted)} of {len(drift.columns)} columns drifted "
            f"({drift.drifted_share:.0%}, limit {limit:.0%}): {', '.join(drifted)}"
        )
    watched = [name for name in policy.features if name in drifted]
    if watched:
        found.append(f"watched feature drifted: {', '.join(watched)}")
    if policy.prediction_drift and drift.prediction is not None and drift.prediction.drifted:
        p = drift.prediction
        found.append(f"predictions drifted ({p.method} {p.score:.3g}, threshold {p.threshold:.3g})")
    return found


def _quality(policy: MonitoringPolicy, quality: QualityReport) -> list[str]:
    found: list[str] = []
    for column in quality.columns:
        if policy.max_missing_share is not None and column.missing_share > policy.max_missing_share:
            found.append(
                f"{column.column}: {column.missing_share:.1%} missing "
                f"(limit {policy.max_missing_share:.1%})"
            )
        limit = policy.max_out_of_range_share
        if limit is not None and column.out_of_range_share > limit:
            found.append(
                f"{column.column}: {column.out_of_range_share:.1%} outside the reference's "
                f"range (limit {limit:.1%})"
            )
        if policy.new_categories and column.new_categories:
            found.append(f"{column.column}: new categories {', '.join(column.new_categories)}")
    return found


def _performance(
    policy: MonitoringPolicy, performance: PerformanceReport, baseline: Mapping[str, float]
) -> list[str]:
    rule = policy.performance
    assert rule is not None
    if not performance.sufficient or rule.metric not in performance.metrics:
        return []
    if rule.metric not in baseline:
        return []
    now, before = performance.metrics[rule.metric], baseline[rule.metric]
    drop = now - before if rule.metric in LOWER_IS_BETTER else before - now
    if drop > rule.max_drop:
        return [
            f"{rule.metric} {now:.4g} on {performance.labelled_rows} labelled rows, "
            f"{drop:.4g} worse than at evaluation ({before:.4g}; allowed {rule.max_drop:g})"
        ]
    return []
