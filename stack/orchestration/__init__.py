"""The local orchestrator (part of the core) and the step-loading every orchestrator shares."""
