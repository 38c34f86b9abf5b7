"""mlstack's Monitor role on Evidently 0.7: Evidently's methods and thresholds, fast enough to
run on every window, and Evidently's own HTML reports."""
