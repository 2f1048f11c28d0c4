"""`python -m pipeline.cli` is the `ratchet` command."""

from pipeline.cli.app import main

main()
