"""The web console, `mlstack ui`: pages over the spine, the registry and the prediction log,
and an approvals inbox that decides through the same governance code as `mlstack approve`.

Nothing here is imported by `import stack` or `mlstack --help`: the web framework (the `ui`
extra: starlette, jinja2, uvicorn, python-multipart) loads only when the console starts.
`stack.ui.app.create_app` builds the ASGI app; each page is a module of `stack.ui.pages`.
"""
