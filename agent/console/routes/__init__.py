"""The console's pages, one module per concern: runs, gates, models, usage, login."""
