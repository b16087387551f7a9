"""`python -m agent.cli`: the same entry point as the `ingrain` script."""

from agent.cli import main

main()
