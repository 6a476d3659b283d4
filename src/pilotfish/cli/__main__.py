"""`python -m pilotfish.cli`: the same as the `pilotfish` command."""

from pilotfish.cli import main

main()
