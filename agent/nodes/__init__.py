"""The graph's nodes: each reads the state, calls one function in tools/, evals/ or memory/, returns an update."""
