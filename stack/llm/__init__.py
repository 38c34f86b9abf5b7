"""LLM and agent apps on the same spine: prompts as versioned assets under the same
lifecycle (`prompts`), evaluation with code scorers and LLM judges (`scorers`, `evaluation`),
results a gate can require, and online evaluation of served traces (`online`).

The local models the RAG recipe and the tests run on (SmolLM2 behind an OpenAI-compatible
server, MiniLM embeddings) are not here: they are the optional `mlstack-llm-local`
distribution (`stack_llm_local`, in `adapters/llm-local/`)."""
