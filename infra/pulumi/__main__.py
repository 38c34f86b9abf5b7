"""`pulumi up` entry point: the whole program is a function of the stack's config."""

from mlstack_infra.program import main

main()
