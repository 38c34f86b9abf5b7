"""The `mlstack` command. Subcommands load on demand so `mlstack --help` stays instant."""
