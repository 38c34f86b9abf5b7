"""`mlstack adapters`: what is installed, read from manifests only (no wrapped tool imported)."""

from __future__ import annotations

import json
from typing import Any

import click

from stack.cli.common import print_table
from stack.plugins.registry import default_registry


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def adapters(as_json: bool) -> None:
    """List installed adapters, the roles they fill and their capabilities."""
    registry = default_registry()
    rows: list[dict[str, Any]] = [
        {
            "adapter": manifest.name,
            "role": role.value,
            "package": manifest.package,
            "capabilities": sorted(binding.capabilities),
        }
        for manifest in sorted(registry.manifests.values(), key=lambda m: m.name)
        for role, binding in manifest.roles.items()
    ]
    broken = {name: b.error for name, b in registry.broken.items()}
    if as_json:
        click.echo(json.dumps({"adapters": rows, "broken": broken}, indent=2))
        return
    from rich.table import Table

    table = Table("adapter", "role", "package", "capabilities", title="installed adapters")
    for row in rows:
        table.add_row(row["adapter"], row["role"], row["package"], ", ".join(row["capabilities"]))
    console = print_table(table)
    for name, error in broken.items():
        console.print(f"[red]broken[/red] {name}: {error}")
