"""``runtime:`` in ``escalade.yaml``: the runtime's settings, validated with located errors.

::

    runtime:
      database: escalade.db              # SQLite file (relative to escalade.yaml) or postgresql://...
      trusted_keys: [keys/release.pub]   # public keys that may sign rule packs
      notifiers:
        timeout: 5                       # seconds per network call (default for each)
        slack:   {webhook_url_env: ESCALADE_SLACK_WEBHOOK,
                  signing_secret_env: ESCALADE_SLACK_SIGNING_SECRET}  # its Acknowledge buttons
        email:   {host: smtp.example.com, port: 587, sender: escalade@example.com,
                  starttls: true, username: escalade, password_env: ESCALADE_SMTP_PASSWORD}
        webhook: {url: "https://hooks.example.com/escalade", secret_env: ESCALADE_WEBHOOK_SECRET}
        pager:   {url: "https://pager.example.com/enqueue", secret_env: ESCALADE_PAGER_SECRET}
        dry_run: false                   # true: record every message as `dry_run`, send nothing
      server:                            # `escalade serve` (flags override host and port)
        host: 127.0.0.1
        port: 8080
        token_env: ESCALADE_SERVER_TOKEN # bearer token required on /events and /tickets
        public_url: https://escalade.example.com  # where people reach it: acknowledgment links
        link_secret_env: ESCALADE_LINK_SECRET     #   are signed with this key (HMAC-SHA256)
      retry:                             # deliveries without a receipt (policies without
        attempts: 5                      #   `check delivery`): sends in all,
        base: 1m                         #   first wait, doubling each time,
        cap: 1h                          #   up to this
      loop_breaker:                      # more than `limit` handoffs of one ticket within
        limit: 5                         #   `window` send it to triage
        window: 1h
      max_clock_skew: 5m                 # an event whose `at` is further ahead is dead-lettered
      last_resort: {ref: dana, channel: ops_alerts}  # owns what nobody else can (SPEC §4)

Secrets are never written in the file: a setting that holds one names the
environment variable that does (``*_env``), and an inline secret is a located
error. A Slack incoming-webhook URL embeds its token, so it is a secret too.
The values are read from the environment at delivery time, so a rotated secret
needs no restart, and a missing one fails that delivery with a reason.

The runtime reads this section itself (the compiler's reader treats it as
free-form), so a runtime-only machine needs neither lark nor jinja2.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from escalade.runtime.clock import TimeError, parse_duration
from escalade.runtime.connectorspec import ConnectorSpec, connector_specs
from escalade.runtime.packschema import FAST_MAX_DEPTH, compile_fast, compiled_verdict
from escalade.runtime.settings_schema import INLINE_SECRETS, RUNTIME_SCHEMA
from escalade.runtime.sources import Source, source_of, source_problems

if TYPE_CHECKING:
    import jsonschema

CONFIG_NAME = "escalade.yaml"
DEFAULT_TIMEOUT = 5.0
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
# The engine's limits: defined here, where the settings that override them are read; the
# engine (escalade.runtime.engine.context) takes its defaults from these.
DEFAULT_RETRY_ATTEMPTS, DEFAULT_RETRY_BASE, DEFAULT_RETRY_CAP = 5, 60, 3600
DEFAULT_LOOP_LIMIT, DEFAULT_LOOP_WINDOW = 5, 3600
DEFAULT_MAX_CLOCK_SKEW = 300  # an event's `at` may run this far ahead of the processing clock


class SettingsError(ValueError):
    """The runtime settings are unreadable or invalid; each line says where (file:line:col)."""


@dataclass(frozen=True, slots=True)
class SlackSettings:
    """A Slack incoming webhook; its URL (which embeds the token) comes from the environment.

    ``signing_secret_env`` names the variable holding the Slack app's signing secret, which
    signs the requests its Acknowledge buttons send to ``POST /slack/actions``."""

    webhook_url_env: str
    timeout: float = DEFAULT_TIMEOUT
    signing_secret_env: str | None = None


@dataclass(frozen=True, slots=True)
class EmailSettings:
    """An SMTP relay; the password (when it needs a login) comes from the environment."""

    host: str
    sender: str
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    """A signed webhook (generic or pager): a URL and the environment variable of its secret.

    ``accepted`` is the receipt for a 202 answer: ``pending`` (a receipt may come
    later) unless the receiver's 202 already means it took the message for good."""

    url: str
    secret_env: str
    accepted: str = "pending"
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True, slots=True)
class NotifierSettings:
    """Which channels are configured; ``None`` for the ones that are not."""

    slack: SlackSettings | None = None
    email: EmailSettings | None = None
    webhook: EndpointSettings | None = None
    pager: EndpointSettings | None = None
    dry_run: bool = False  # record every message as `dry_run` and send nothing
    connectors: Mapping[str, ConnectorSpec] = field(default_factory=dict)  # by action

    def kinds(self) -> set[str]:
        """The channel kinds that are configured (slack, email, webhook, pager)."""
        found = {"slack": self.slack, "email": self.email, "webhook": self.webhook}
        found["pager"] = self.pager
        return {kind for kind, spec in found.items() if spec is not None}

    def env_names(self) -> list[str]:
        """Every environment variable these settings read secrets from."""
        names = [
            self.slack.webhook_url_env if self.slack else None,
            self.slack.signing_secret_env if self.slack else None,
            self.email.password_env if self.email else None,
            self.webhook.secret_env if self.webhook else None,
            self.pager.secret_env if self.pager else None,
        ]
        return [n for n in names if n]

    def missing_env(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """The named secrets that are not set (or empty) in ``environ`` (default: os.environ)."""
        env = os.environ if environ is None else environ
        return [n for n in self.env_names() if not env.get(n)]


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """``escalade serve``: where to listen and the variable holding the bearer token (if any).

    ``public_url`` is where people reach the server; with ``link_secret_env`` (the variable
    holding the key that signs them) messages to an assignee carry an acknowledgment link
    (:mod:`escalade.runtime.links`)."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token_env: str | None = None
    public_url: str | None = None
    link_secret_env: str | None = None


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """The general delivery retry: ``attempts`` sends in all, waiting ``base`` seconds
    first, doubling up to ``cap`` seconds."""

    attempts: int = DEFAULT_RETRY_ATTEMPTS
    base: int = DEFAULT_RETRY_BASE
    cap: int = DEFAULT_RETRY_CAP


@dataclass(frozen=True, slots=True)
class LoopBreakerSettings:
    """The routing-loop breaker: more than ``limit`` handoffs within ``window`` seconds."""

    limit: int = DEFAULT_LOOP_LIMIT
    window: int = DEFAULT_LOOP_WINDOW


@dataclass(frozen=True, slots=True)
class LastResort:
    """Who owns an escalation nobody else can (SPEC §4), and the channel its alert goes to."""

    ref: str
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """The ``runtime:`` section; ``found`` is False when there is no ``escalade.yaml``."""

    root: Path
    database: str | None = None  # a SQLite path (absolute) or a postgresql:// URL
    trusted_keys: tuple[Path, ...] = ()
    notifiers: NotifierSettings | None = None
    server: ServerSettings = field(default_factory=ServerSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    loop_breaker: LoopBreakerSettings = field(default_factory=LoopBreakerSettings)
    max_clock_skew: int = DEFAULT_MAX_CLOCK_SKEW
    last_resort: LastResort | None = None
    sources: Mapping[str, Source] = field(default_factory=dict)  # escalade.runtime.sources
    found: bool = False
    source: Path | None = field(default=None, compare=False)


def find_config(start: Path | None = None) -> Path | None:
    """The nearest ``escalade.yaml`` at or above ``start`` (default: the working directory)."""
    here = (start or Path.cwd()).resolve()
    if here.is_file():
        here = here.parent
    for d in (here, *here.parents):
        if (d / CONFIG_NAME).is_file():
            return d / CONFIG_NAME
    return None


def load_settings(start: Path | None = None) -> RuntimeSettings:
    """Read the runtime settings of the nearest ``escalade.yaml``; defaults without one.

    Raises :class:`SettingsError` with located messages."""
    file = find_config(start)
    if file is None:
        return RuntimeSettings(root=(start or Path.cwd()).resolve())
    try:
        text = file.read_text("utf-8")
    except OSError as exc:
        raise SettingsError(f"{file}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{file}: not UTF-8 text") from None
    return parse_settings(text, file.parent, shown=str(file))


def read_yaml_mapping(
    text: str, shown: str = CONFIG_NAME
) -> tuple[dict[str, Any], yaml.Node | None]:
    """The mapping an ``escalade.yaml`` text holds and its node tree (for locating errors).

    Raises :class:`SettingsError` located at ``shown:line:col``."""
    try:
        document = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
        problem = getattr(exc, "problem", None) or str(exc)
        raise SettingsError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SettingsError(f"{shown}:1:1: expected a mapping of settings")
    return data, document


def parse_settings(text: str, root: Path, shown: str = CONFIG_NAME) -> RuntimeSettings:
    """Validate the ``runtime:`` section of an ``escalade.yaml`` text; paths resolve under ``root``."""
    data, document = read_yaml_mapping(text, shown)
    section = data.get("runtime")
    if section is None:
        return RuntimeSettings(root=root, found=True, source=Path(shown))
    problems = [
        *_inline_secrets(section, document, shown),
        *_schema_problems(section, document, shown),
    ]
    if not problems:
        problems = _duration_problems(section, document, shown) + _source_problems(
            section, document, shown
        )
    if problems:
        raise SettingsError("\n".join(sorted(set(problems), key=_line_order)))
    return _build(section, root, Path(shown))


def _source_problems(
    section: Mapping[str, Any], document: yaml.Node | None, shown: str
) -> list[str]:
    """What :func:`escalade.runtime.sources.source_problems` finds, located."""
    return [
        f"{_where(document, ['sources', name, *path], shown)}:"
        f" runtime.{'.'.join(map(str, ['sources', name, *path]))}: {message}"
        for name, raw in (section.get("sources") or {}).items()
        for path, message in source_problems(raw)
    ]


def _line_order(problem: str) -> tuple[int, int, str]:
    found = re.match(r".*?:(\d+):(\d+): ", problem)
    return (int(found.group(1)), int(found.group(2)), problem) if found else (0, 0, problem)


def _where(document: yaml.Node | None, path: list[Any], shown: str, key: bool = False) -> str:
    node = locate(document, ["runtime", *path], key)
    mark = node.start_mark if node is not None else None
    return f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown


def locate(node: yaml.Node | None, path: list[Any], key: bool = False) -> yaml.Node | None:
    """The YAML node at ``path`` (the key node itself with ``key``), or the deepest that exists."""
    for depth, step in enumerate(path):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(step):
                    node = k if key and depth == len(path) - 1 else v
                    break
            else:
                return node
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if step >= len(node.value):
                return node
            node = node.value[step]
        else:
            return node
    return node


def _inline_secrets(section: Any, document: yaml.Node | None, shown: str) -> list[str]:
    """An inline secret under ``runtime.notifiers`` or ``runtime.server`` (``token: ...``) is refused."""
    if not isinstance(section, dict):
        return []
    notifiers = section.get("notifiers")
    specs: list[tuple[list[str], Any]] = [
        (["notifiers", str(kind)], spec)
        for kind, spec in (notifiers.items() if isinstance(notifiers, dict) else [])
    ]
    specs.append((["server"], section.get("server")))
    sources = section.get("sources")
    for name, spec in sources.items() if isinstance(sources, dict) else []:
        specs.append(
            (["sources", str(name), "auth"], spec.get("auth") if isinstance(spec, dict) else None)
        )
    problems = []
    for where, spec in specs:
        if not isinstance(spec, dict):
            continue
        for key in spec:
            use = INLINE_SECRETS.get(str(key))
            if use is None:
                continue
            if where == ["server"] and key == "token":
                use = "token_env"
            path = [*where, key]
            problems.append(
                f"{_where(document, path, shown, key=True)}: runtime.{'.'.join(map(str, path))}: "
                f"secrets are never written in escalade.yaml; put it in an environment "
                f"variable and use {use}"
            )
        key, hint = ("url", "sign with secret_env instead")
        if where == ["server"]:
            key, hint = ("public_url", "links are signed with link_secret_env")
        url = spec.get(key)
        if isinstance(url, str) and _has_credentials(url):
            problems.append(
                f"{_where(document, [*where, key], shown)}: runtime.{'.'.join([*where, key])}:"
                f" credentials in a URL are an inline secret; {hint}"
            )
    return problems


def _has_credentials(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False  # the schema reports the malformed URL
    return bool(parts.username or parts.password)


def _replaced_inline(err: jsonschema.ValidationError) -> bool:
    """A missing ``X_env`` whose inline ``X`` is present was already reported as a secret."""
    if err.validator not in ("required", "dependentRequired") or not isinstance(err.instance, dict):
        return False
    wanted = err.validator_value
    if isinstance(wanted, dict):
        names = [n for key, needs in wanted.items() if key in err.instance for n in needs]
    else:
        names = list(wanted) if isinstance(wanted, list) else []
    missing = [n for n in names if n not in err.instance]
    inline = {use: key for key, use in INLINE_SECRETS.items()}
    return bool(missing) and all(inline.get(n) in err.instance for n in missing)


@cache
def _fast_validator() -> Any | None:
    return compile_fast(RUNTIME_SCHEMA)


def _json_typed(value: Any, depth: int = 0) -> bool:
    """Only JSON's own types, not too deep: what the compiled validator may judge (YAML
    also gives dates, and a bool is an int to Python but not to JSON Schema's reader)."""
    if depth > FAST_MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return all(type(k) is str and _json_typed(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_typed(v, depth + 1) for v in value)
    return value is None or type(value) in (str, int, float, bool)


def _schema_problems(section: Any, document: yaml.Node | None, shown: str) -> list[str]:
    # The compiled validator says yes fast (every CLI call reads the settings); only a
    # section it refuses (or cannot judge) is walked by jsonschema, which words the problems.
    if _json_typed(section) and compiled_verdict(_fast_validator(), section):
        return []
    import jsonschema

    validator = jsonschema.Draft202012Validator(RUNTIME_SCHEMA)
    problems = []
    for err in validator.iter_errors(section):
        if _replaced_inline(err):
            continue
        path = list(err.path)
        name = ".".join(map(str, ["runtime", *path]))
        if err.validator == "additionalProperties":
            parent = locate(document, ["runtime", *path])
            allowed = (err.schema.get("properties") or {}) if isinstance(err.schema, dict) else {}
            extra = [
                k.value
                for k, _ in (parent.value if isinstance(parent, yaml.MappingNode) else [])
                if k.value not in allowed
            ]
            for key in extra:
                inline = (path[:1] == ["notifiers"] and len(path) == 2) or path == ["server"]
                inline = inline or (path[:1] == ["sources"] and path[-1:] == ["auth"])
                if str(key) in INLINE_SECRETS and inline:
                    continue  # already reported as an inline secret
                where = _where(document, [*path, key], shown, key=True)
                known = ", ".join(sorted(allowed))
                problems.append(f"{where}: {name}: unknown setting {key!r} (known: {known})")
            continue
        where = _where(document, path, shown)
        if err.validator == "anyOf":
            problems.append(
                f"{where}: {name}: configure at least one of slack, email, webhook, pager"
                " (or dry_run: true)"
            )
            continue
        if err.validator == "dependentRequired" and isinstance(err.instance, dict):
            for key, needs in err.validator_value.items():
                missing = [n for n in needs if key in err.instance and n not in err.instance]
                if missing:
                    where = _where(document, [*path, key], shown, key=True)
                    problems.append(f"{where}: {name}.{key} needs {' and '.join(missing)} too")
            continue
        if path[-1:] == ["public_url"] and err.validator == "pattern":
            problems.append(
                f"{where}: {name}: must be an http:// or https:// URL without blanks, quotes"
                " or angle brackets"
            )
            continue
        if path and str(path[-1]).endswith("_env") and err.validator in ("pattern", "type"):
            # Never echo the value: it may be the secret itself, pasted by mistake.
            problems.append(
                f"{where}: {name}: must be the NAME of an environment variable"
                " (letters, digits and _), not the secret itself"
            )
            continue
        problems.append(f"{where}: {name}: {err.message}")
    return problems


# The duration settings: (section, key) -> its default in seconds.
DURATIONS: dict[tuple[str, ...], int] = {
    ("retry", "base"): DEFAULT_RETRY_BASE,
    ("retry", "cap"): DEFAULT_RETRY_CAP,
    ("loop_breaker", "window"): DEFAULT_LOOP_WINDOW,
    ("max_clock_skew",): DEFAULT_MAX_CLOCK_SKEW,
}


def _raw(section: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for step in path[:-1]:
        section = section.get(step) or {}
    return section.get(path[-1])


def _seconds(section: Mapping[str, Any], *path: str) -> int:
    """The duration ``runtime.<path>`` in seconds (its default when absent)."""
    raw = _raw(section, path)
    return DURATIONS[path] if raw is None else parse_duration(raw)


def _duration_problems(section: Any, document: yaml.Node | None, shown: str) -> list[str]:
    """Durations that do not parse, are under a second, or a retry cap below its base
    (the schema already holds, so every value is a string)."""
    problems = []
    for path in DURATIONS:
        raw = _raw(section, path)
        if raw is None:
            continue
        where = _where(document, list(path), shown)
        name = ".".join(path)
        try:
            seconds = parse_duration(raw)
        except TimeError as exc:
            problems.append(f"{where}: runtime.{name}: {exc}")
            continue
        if seconds < 1:
            problems.append(f"{where}: runtime.{name}: must be at least 1s (got {raw!r})")
    if problems:
        return problems
    base, cap = _seconds(section, "retry", "base"), _seconds(section, "retry", "cap")
    if cap < base:
        present = "cap" if "cap" in (section.get("retry") or {}) else "base"
        problems.append(
            f"{_where(document, ['retry', present], shown)}: runtime.retry.cap"
            f" ({format_seconds(cap)}) must be at least runtime.retry.base ({format_seconds(base)})"
        )
    return problems


def format_seconds(seconds: int) -> str:
    """``3600`` -> ``3600s``: an exact figure for messages."""
    return f"{seconds}s"


def _timeout(spec: Mapping[str, Any], default: float) -> float:
    return float(spec.get("timeout", default))


def _build(section: Mapping[str, Any], root: Path, source: Path) -> RuntimeSettings:
    database = section.get("database")
    keys = tuple(root / p for p in section.get("trusted_keys") or [])
    raw = section.get("notifiers")
    notifiers: NotifierSettings | None = None
    if raw is not None:
        default = float(raw.get("timeout", DEFAULT_TIMEOUT))
        slack = raw.get("slack")
        email = raw.get("email")
        webhook = raw.get("webhook")
        pager = raw.get("pager")
        notifiers = NotifierSettings(
            slack=SlackSettings(
                slack["webhook_url_env"],
                _timeout(slack, default),
                slack.get("signing_secret_env"),
            )
            if slack
            else None,
            email=EmailSettings(
                host=email["host"],
                sender=email["sender"],
                port=int(email.get("port", 587 if email.get("starttls") else 25)),
                starttls=bool(email.get("starttls", False)),
                username=email.get("username"),
                password_env=email.get("password_env"),
                timeout=_timeout(email, default),
            )
            if email
            else None,
            webhook=_endpoint_settings(webhook, default) if webhook else None,
            pager=_endpoint_settings(pager, default) if pager else None,
            dry_run=bool(raw.get("dry_run", False)),
            connectors=connector_specs(raw.get("connectors"), default),
        )
    last_resort = section.get("last_resort")
    server = section.get("server") or {}
    return RuntimeSettings(
        root=root,
        database=(
            None if not database else database if "://" in database else str(root / database)
        ),
        trusted_keys=keys,
        notifiers=notifiers,
        server=ServerSettings(
            host=str(server.get("host", DEFAULT_HOST)),
            port=int(server.get("port", DEFAULT_PORT)),
            token_env=server.get("token_env"),
            public_url=server.get("public_url"),
            link_secret_env=server.get("link_secret_env"),
        ),
        retry=RetrySettings(
            attempts=int((section.get("retry") or {}).get("attempts", DEFAULT_RETRY_ATTEMPTS)),
            base=_seconds(section, "retry", "base"),
            cap=_seconds(section, "retry", "cap"),
        ),
        loop_breaker=LoopBreakerSettings(
            limit=int((section.get("loop_breaker") or {}).get("limit", DEFAULT_LOOP_LIMIT)),
            window=_seconds(section, "loop_breaker", "window"),
        ),
        max_clock_skew=_seconds(section, "max_clock_skew"),
        last_resort=LastResort(last_resort["ref"], last_resort.get("channel"))
        if last_resort
        else None,
        sources={str(n): source_of(str(n), r) for n, r in (section.get("sources") or {}).items()},
        found=True,
        source=source,
    )


def _endpoint_settings(spec: Mapping[str, Any], default: float) -> EndpointSettings:
    return EndpointSettings(
        url=spec["url"],
        secret_env=spec["secret_env"],
        accepted=str(spec.get("accepted", "pending")),
        timeout=_timeout(spec, default),
    )
