"""The OpenAI-compatible endpoint: server and app, the batching engine and its runners (PyTorch, llama.cpp),
the wire schemas, the serving config, the model slot that hot-swaps versions, and the usage-log writer."""
