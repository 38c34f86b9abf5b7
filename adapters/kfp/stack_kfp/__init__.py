"""mlstack's Orchestrator role on Kubeflow Pipelines 2."""
