// The Escalade extension: .esc files get the TextMate grammar (syntaxes/) and the
// language configuration; this client starts `escalade lsp` over stdio for
// diagnostics, hover, definitions, completion, formatting and quick fixes.
//
// Settings: escalade.server.command (default "escalade": the executable on PATH, or
// e.g. ".venv/bin/escalade"), escalade.server.args (default ["lsp"]) and
// escalade.trace.server. "Escalade: Restart language server" restarts it.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function serverOptions() {
  const config = vscode.workspace.getConfiguration("escalade");
  const folder = vscode.workspace.workspaceFolders && vscode.workspace.workspaceFolders[0];
  // No `transport`: the server talks LSP on its stdin and stdout.
  return {
    command: config.get("server.command", "escalade"),
    args: config.get("server.args", ["lsp"]),
    options: folder ? { cwd: folder.uri.fsPath } : {},
  };
}

function clientOptions() {
  return {
    documentSelector: [{ scheme: "file", language: "escalade" }],
    synchronize: {
      fileEvents: vscode.workspace.createFileSystemWatcher("**/{*.esc,escalade.yaml}"),
    },
  };
}

async function start() {
  client = new LanguageClient("escalade", "Escalade", serverOptions(), clientOptions());
  await client.start();
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("escalade.restartServer", async () => {
      if (client) await client.stop();
      await start();
    }),
  );
  await start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate, serverOptions, clientOptions };
