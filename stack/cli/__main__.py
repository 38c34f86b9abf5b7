"""`python -m stack.cli`, the same as the `mlstack` command."""

from stack.cli.main import main

main()
