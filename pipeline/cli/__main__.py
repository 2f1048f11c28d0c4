"""`python -m pipeline.cli` is the `ratchet` command."""

from ratchet.pipeline.cli.app import main

main()
