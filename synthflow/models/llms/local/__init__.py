"""Models that run in this process through an optional third-party library: transformers,
vLLM and llama.cpp compute here, and LiteLLM calls providers through its own SDK (its own
transport, retries and timeouts, not synthflow's HTTP call path). Each needs an extra, imported
only when the model loads; ``base.LocalLLM`` batches concurrent calls into one model call."""
