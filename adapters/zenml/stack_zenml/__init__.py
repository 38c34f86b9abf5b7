"""mlstack's Orchestrator role on ZenML."""
