"""The VS Code extension: its TextMate grammar, checked with the engine VS Code runs.

Every line of the bundled policies and policy tests, of ``escalade init``'s starter
files, of the diagnostics reference's examples and of the language reference's
``esc`` examples is tokenized by ``vscode-textmate`` on ``vscode-oniguruma`` (the
versions locked in editors/vscode/test/package-lock.json, installed with ``npm ci``
into a cache directory on first use) under node, and no token may be scoped
``invalid``; lines the language cannot contain must be. ``extension.js`` is loaded
against stub ``vscode`` modules to show that it starts ``escalade lsp`` over stdio.

Skips only when node is not installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from escalade.compiler.codes import CODES
from escalade.compiler.scaffold.render import STARTER_POLICIES, render

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "editors" / "vscode"
GRAMMAR = EXTENSION / "syntaxes" / "escalade.tmLanguage.json"
ENGINE = EXTENSION / "test"
TOKENIZE = ENGINE / "tokenize.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed: no TextMate engine")


def engine_modules() -> Path:
    """node_modules with the locked engine, installed once per lock file into a cache."""
    lock = (ENGINE / "package-lock.json").read_bytes()
    default = Path.home() / ".cache" / "escalade" / "textmate"
    cache = Path(os.environ.get("ESCALADE_NODE_CACHE", default))
    home = cache / hashlib.sha256(lock).hexdigest()[:16]
    modules = home / "node_modules"
    if (modules / ".complete").exists():
        return modules
    npm = shutil.which("npm")
    assert npm is not None, "node is installed but npm is not: cannot install the engine"
    staging = cache / f"staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(ENGINE / name, staging / name)
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=staging,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, f"npm ci failed:\n{done.stdout}{done.stderr}"
    (staging / "node_modules" / ".complete").touch()
    shutil.rmtree(home, ignore_errors=True)
    staging.rename(home)
    return modules


def tokenize(files: list[Path]) -> dict[str, list[list[dict[str, Any]]]]:
    """File -> lines -> tokens (text and scopes), as VS Code tokenizes them."""
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(TOKENIZE), str(engine_modules()), str(GRAMMAR), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return {f["file"]: f["lines"] for f in json.loads(done.stdout)["files"]}


def invalid_tokens(lines: list[list[dict[str, Any]]]) -> Iterator[tuple[int, str, str]]:
    for number, tokens in enumerate(lines, 1):
        for t in tokens:
            bad = [s for s in t["scopes"] if s.split(".")[0] == "invalid"]
            if bad:
                yield number, t["text"], bad[-1]


def sources(tmp: Path) -> list[Path]:
    """Every policy text the project ships or documents, as files."""
    files = sorted((REPO / "policies").glob("*.esc"))
    written: dict[str, str] = {f"starter_{k}": render(v) for k, v in STARTER_POLICIES.items()}
    for code in CODES.values():
        if code.name != "syntax":  # the syntax error's example is meant to be invalid
            written[f"{code.code}_example.esc"] = code.example
        written[f"{code.code}_fixed.esc"] = code.fixed
    language = (REPO / "docs" / "language.md").read_text("utf-8")
    for i, block in enumerate(re.findall(r"^```esc\n(.*?)^```", language, re.S | re.M)):
        written[f"language_{i}.esc"] = block
    for name, text in written.items():
        (tmp / name).write_text(text, encoding="utf-8")
        files.append(tmp / name)
    return files


def test_every_shipped_and_documented_line_tokenizes_without_an_invalid_scope(
    tmp_path: Path,
) -> None:
    files = sources(tmp_path)
    assert len(files) > 40
    found = tokenize(files)
    assert len(found) == len(files)
    problems = [
        f"{Path(file).name}:{n}: {text!r} is {scope}"
        for file, lines in found.items()
        for n, text, scope in invalid_tokens(lines)
    ]
    assert problems == []


BAD_LINES = {
    "owner primary Alice ack 5m": "Alice",
    "owner backup bob ack 5mins": "5mins",
    "owner backup bob ack 1m1h": "1m1h",
    'title "unterminated': '"unterminated',
    'title "a bad \\q escape"': "\\q",
    "when ticket.Severity == high": "Severity",
    "step notify oncall; page bob": ";",
}


def test_what_the_language_cannot_contain_is_marked_invalid(tmp_path: Path) -> None:
    file = tmp_path / "bad.esc"
    file.write_text("\n".join(BAD_LINES) + "\n", encoding="utf-8")
    (lines,) = tokenize([file]).values()
    marked = {n: text for n, text, _ in invalid_tokens(lines)}
    assert marked == {n: want for n, want in enumerate(BAD_LINES.values(), 1)}


def scopes_of(line: str, tmp: Path) -> dict[str, list[str]]:
    """Each word of ``line`` (tokens split further at spaces) and its scopes."""
    file = tmp / "one.esc"
    file.write_text(line + "\n", encoding="utf-8")
    (lines,) = tokenize([file]).values()
    return {word: t["scopes"] for t in lines[0] for word in t["text"].split()}


def test_tokens_get_the_scopes_themes_color(tmp_path: Path) -> None:
    line = 'policy vip { owner primary alice ack 1h30m  step notify ops "{{ ticket.id }}" }  # x'
    got = {word: scopes[-1] for word, scopes in scopes_of(line, tmp_path).items()}
    assert got["policy"] == "storage.type.escalade"
    assert got["vip"] == "entity.name.type.escalade"
    assert got["owner"] == "keyword.control.statement.escalade"
    assert got["primary"] == "constant.language.escalade"
    assert got["1h30m"] == "constant.numeric.duration.escalade"
    assert got["notify"] == "support.function.action.escalade"
    assert got["ticket"] == "variable.other.object.escalade"
    assert got["id"] == "variable.other.property.escalade"
    assert got["x"] == "comment.line.number-sign.escalade"
    suppression = scopes_of("# escalade: ignore[W601] kept on purpose", tmp_path)
    assert suppression["W601"][-1] == "constant.other.diagnostic-code.escalade"
    assert "comment.line.number-sign.suppression.escalade" in suppression["purpose"]


# ----------------------------------------------------------------- the extension's manifest


def manifest() -> dict[str, Any]:
    doc = json.loads((EXTENSION / "package.json").read_text("utf-8"))
    assert isinstance(doc, dict)
    return doc


def test_the_manifest_ties_esc_files_to_the_grammar_and_configuration() -> None:
    doc = manifest()
    assert doc["version"] == metadata.version("escalade")
    (language,) = doc["contributes"]["languages"]
    (grammar,) = doc["contributes"]["grammars"]
    assert language["extensions"] == [".esc"]
    assert grammar["language"] == language["id"]
    assert grammar["scopeName"] == json.loads(GRAMMAR.read_text("utf-8"))["scopeName"]
    assert (EXTENSION / grammar["path"]).resolve() == GRAMMAR
    config = json.loads((EXTENSION / language["configuration"]).read_text("utf-8"))
    assert config["comments"] == {"lineComment": "#"}
    assert ["{", "}"] in config["brackets"] and ["(", ")"] in config["brackets"]
    settings = doc["contributes"]["configuration"]["properties"]
    assert settings["escalade.server.command"]["default"] == "escalade"
    assert settings["escalade.server.args"]["default"] == ["lsp"]


STUB_VSCODE = """
module.exports = {
  workspace: {
    workspaceFolders: [{ uri: { fsPath: process.env.STUB_FOLDER } }],
    getConfiguration: () => ({ get: (key, fallback) => fallback }),
    createFileSystemWatcher: (glob) => ({ glob }),
  },
  commands: { registerCommand: (name) => ({ name }) },
};
"""
STUB_CLIENT = """
class LanguageClient {
  constructor(id, name, server, client) {
    globalThis.started = { id, name, server, client };
  }
  async start() { globalThis.started.running = true; }
  async stop() {}
}
module.exports = { LanguageClient };
"""
ACTIVATE = """
const extension = require(process.argv[1]);
const context = { subscriptions: [] };
extension.activate(context).then(() => {
  const s = globalThis.started;
  const out = { ...s, commands: context.subscriptions.map((c) => c.name) };
  out.client.synchronize = { glob: s.client.synchronize.fileEvents.glob };
  process.stdout.write(JSON.stringify(out));
});
"""


def test_the_client_starts_escalade_lsp_over_stdio(tmp_path: Path) -> None:
    modules = tmp_path / "node_modules"
    (modules / "vscode").mkdir(parents=True)
    (modules / "vscode" / "index.js").write_text(STUB_VSCODE)
    (modules / "vscode-languageclient").mkdir()
    (modules / "vscode-languageclient" / "node.js").write_text(STUB_CLIENT)
    assert NODE is not None
    env = {**os.environ, "NODE_PATH": str(modules), "STUB_FOLDER": str(tmp_path)}
    done = subprocess.run(
        [NODE, "-e", ACTIVATE, str(EXTENSION / "extension.js")],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    started = json.loads(done.stdout)
    assert started["running"] is True
    assert started["server"] == {
        "command": "escalade",
        "args": ["lsp"],
        "options": {"cwd": str(tmp_path)},
    }
    assert started["client"]["documentSelector"] == [{"scheme": "file", "language": "escalade"}]
    commands = {c["command"] for c in manifest()["contributes"]["commands"]}
    assert (
        started["commands"] == ["escalade.restartServer"] and set(started["commands"]) == commands
    )
