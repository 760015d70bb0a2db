"""``escalade serve``: the HTTP API over the runtime (see :mod:`escalade.runtime.server`)."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

import click

from escalade.runtime.app import (
    AppError,
    last_resort_problem,
    runtime_settings,
    unreachable,
    unreachable_message,
)
from escalade.runtime.cli.options import app_error, opened
from escalade.runtime.server import EscaladeServer
from escalade.runtime.store import Store

log = logging.getLogger("escalade.runtime.server")


def serve_until_signal(server: EscaladeServer, echo: Callable[[str], None]) -> None:
    """Run ``server`` until SIGTERM or SIGINT, then stop it gracefully."""
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        echo(f"escalade serve: listening on {server.url} (Ctrl-C or SIGTERM to stop)")
        while not stop.wait(0.5):
            if not server.ticker_alive:
                echo("escalade serve: the timer thread stopped; shutting down")
                break
        started = time.monotonic()
        server.stop()
        why = received[0] if received else "error"
        echo(f"escalade serve: stopped on {why} in {time.monotonic() - started:.2f}s")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stderr_echo(text: str) -> None:
    click.echo(text, err=True)
    sys.stderr.flush()


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (``localhost``, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name that may resolve anywhere


def check_credentials(store: Store, token_env: str | None, host: str) -> None:
    """Log how requests authenticate; refuse (exit 2) a server without any credential on an
    address other machines can reach."""
    if token_env is not None:
        log.warning(
            "runtime.server.token_env is deprecated: $%s is accepted as service:token_env"
            " (ingest and admin); create API tokens with `escalade token create` instead",
            token_env,
        )
        return
    if store.tokens():
        return
    if not is_loopback(host):
        click.echo(
            f"error: refusing to serve on {host} without authentication: the store has no API"
            " token and runtime.server.token_env is not set. Create one with `escalade token"
            " create` (same --db), or listen on 127.0.0.1.",
            err=True,
        )
        sys.exit(2)
    log.warning(
        "serving WITHOUT authentication on %s: the store has no API token and"
        " runtime.server.token_env is not set (allowed on loopback only)",
        host,
    )


@click.command("serve")
@click.option("--host", default=None, help="Address to listen on (default: runtime.server.host).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port to listen on, 0 for any free one (default: runtime.server.port).",
)
@click.option(
    "--db",
    default=None,
    help="Store: SQLite file or postgresql://... (default: runtime.database, else escalade.db).",
)
@click.option(
    "--pack",
    "pack_path",
    default=None,
    help="Rule pack to activate first (verified; a refused pack leaves the active one running).",
)
def serve_command(
    host: str | None, port: int | None, db: str | None, pack_path: str | None
) -> None:
    """Serve the HTTP API: POST /events, POST /receipts/KEY, GET /tickets/ID,
    POST /tickets/ID/{ack,resolve,close,transfer,postmortem}, /metrics, /healthz."""
    try:
        settings = runtime_settings()
    except AppError as exc:
        raise app_error(exc) from None
    from escalade.runtime.tracespec import apply_observability, load_observability
    from escalade.runtime.tracing import TracingUnavailable

    try:  # runtime.logging (text or JSON lines) and runtime.tracing (OTLP), before anything logs
        apply_observability(load_observability(settings.source))
    except TracingUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    server_settings = settings.server
    token_env = server_settings.token_env
    if token_env is not None and not os.environ.get(token_env):
        raise click.ClickException(
            f"runtime.server.token_env names ${token_env}, which is not set:"
            " refusing to serve without the token"
        )
    webhook = settings.notifiers.webhook if settings.notifiers else None
    pager = settings.notifiers.pager if settings.notifiers else None
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with opened(db, pack_path, None, quiet_reach=True) as (app, _when):
        pack = app.engine.active().pack
        missing = unreachable(settings, pack)
        if missing:
            raise click.UsageError(f"refusing to serve: {unreachable_message(missing)}")
        problem = last_resort_problem(settings, pack)
        if problem is not None:
            raise click.UsageError(f"refusing to serve: {problem}")
        if settings.last_resort is None:
            logging.getLogger("escalade.runtime.server").warning(
                "no runtime.last_resort: an escalation nobody available can take stays with"
                " its unavailable triage owner, flagged unowned (SPEC: configure one)"
            )
        check_credentials(app.store, token_env, host or server_settings.host)
        try:
            server = EscaladeServer(
                app.engine,
                host or server_settings.host,
                server_settings.port if port is None else port,
                token_env=token_env,
                receipt_secret_env=webhook.secret_env if webhook else None,
                pager_secret_env=pager.secret_env if pager else None,
            )
        except OSError as exc:
            raise click.ClickException(f"cannot listen: {exc.strerror or exc}") from None
        from escalade.runtime.web.sources import attach_sources

        attach_sources(server, settings.sources)  # POST /sources/<name>: the validated sources
        serve_until_signal(server, _stderr_echo)
