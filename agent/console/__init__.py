"""The web console: runs, their live trace, gates, models, usage and lessons, over the same store as the CLI."""
