"""The ingrain agent: a LangGraph state machine from goal to deployed model, and its command line."""
