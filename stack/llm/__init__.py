"""LLM and agent apps on the same spine: prompts as versioned assets under the same
lifecycle, evaluation with code scorers and LLM judges, results a gate can require."""
