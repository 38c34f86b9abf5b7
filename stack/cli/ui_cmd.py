"""`mlstack ui`: the web console on 127.0.0.1 (the `ui` extra: starlette, jinja2, uvicorn)."""

from __future__ import annotations

import socket

import click

from stack.cli.common import open_existing_session
from stack.errors import StackError

UI_PACKAGES = ("starlette", "jinja2", "uvicorn", "multipart")


def _require_ui_extra() -> None:
    import importlib.util

    missing = [name for name in UI_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise StackError(
            f"the console needs {', '.join(missing)}: pip install 'mlstack[ui]' (or uv sync "
            "--extra ui)"
        )


@click.command("ui")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--stack",
    "stack_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Stack file (as `mlstack --stack`; default ./stack.yaml or the embedded stack).",
)
@click.option(
    "--mlflow-url",
    default="http://127.0.0.1:5000",
    show_default=True,
    help="Where MLflow's own UI answers (`mlflow ui`), for the links to runs.",
)
@click.pass_context
def ui(ctx: click.Context, port: int, stack_file: str | None, mlflow_url: str) -> None:
    """Serve the web console on 127.0.0.1 (Ctrl-C stops it)."""
    _require_ui_extra()
    import os

    import uvicorn

    from stack.ui.app import REGISTRY_WAITS, create_app, server_options

    for name, value in REGISTRY_WAITS.items():  # a page answers when the registry is down
        os.environ.setdefault(name, value)

    if stack_file:
        ctx.obj = {**(ctx.obj or {}), "stack_file": stack_file}
    listening = _listen(port)
    port = listening.getsockname()[1]  # the one the system chose for --port 0
    try:
        session = open_existing_session(ctx)
    except BaseException:
        listening.close()
        raise
    try:
        app = create_app(session, mlflow_url=mlflow_url, warm=True, port=port)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            **server_options(session.stack.identity),
        )
        server = uvicorn.Server(config)
        click.echo(
            f"mlstack console for stack {session.stack.name}: http://127.0.0.1:{port}/ "
            "(Ctrl-C stops it)"
        )
        server.run(sockets=[listening])
    finally:
        listening.close()
        session.close()


def _listen(port: int) -> socket.socket:
    """A socket listening on 127.0.0.1:`port` (before the URL is printed, so that a printed
    URL answers); a taken port is a ClickException naming it (exit 1)."""
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # as uvicorn binds: a port left in TIME_WAIT by a console just stopped is free again
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind(("127.0.0.1", port))
        listening.listen(2048)
    except OSError as exc:
        listening.close()
        raise click.ClickException(
            f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}): another program "
            "(another mlstack ui?) has it; stop it or choose another with --port"
        ) from None
    return listening
