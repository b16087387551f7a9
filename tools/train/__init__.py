"""Training: the config and its YAML presets, the chat template, tokenized data with assistant-only labels,
the CPU loss, progress lines, the TRL+PEFT trainer and the Unsloth backend on CUDA, thread choice, and the
planner's arithmetic (how long training and evaluation take here). Heavy imports stay inside functions."""
