"""mlstack's Orchestrator role on Prefect 3."""
