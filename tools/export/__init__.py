"""Export a model version for other runtimes: a standalone HF folder (vLLM, transformers) or a GGUF file
(llama.cpp), with the base GGUF's metadata kept."""
