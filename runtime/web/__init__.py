"""The web layer of ``escalade serve``: the ASGI app (Starlette under uvicorn), its pages,
acknowledgment links and Slack actions, over :class:`~escalade.runtime.server.EscaladeServer`.

Only the server imports this package; the runtime core never does (nor jinja2).
"""
