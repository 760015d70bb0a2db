// Tokenize files with a TextMate grammar, as VS Code does (vscode-textmate on the
// Oniguruma WebAssembly build), and print every token as JSON:
//
//   node tokenize.js MODULES_DIR GRAMMAR.json FILE...
//
// MODULES_DIR is a node_modules folder holding vscode-textmate and vscode-oniguruma
// (tests/editors/test_textmate.py installs them from package.json beside this script).
// Output: {"files": [{"file": F, "lines": [[{"text": T, "scopes": [S...]}, ...], ...]}]}
"use strict";

const fs = require("fs");
const path = require("path");

async function main() {
  const [modules, grammarPath, ...files] = process.argv.slice(2);
  if (!modules || !grammarPath) {
    console.error("usage: node tokenize.js MODULES_DIR GRAMMAR.json FILE...");
    process.exit(2);
  }
  const textmate = require(path.join(modules, "vscode-textmate"));
  const oniguruma = require(path.join(modules, "vscode-oniguruma"));
  const wasm = fs.readFileSync(path.join(modules, "vscode-oniguruma", "release", "onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));

  const raw = fs.readFileSync(grammarPath, "utf8");
  const registry = new textmate.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async () => textmate.parseRawGrammar(raw, grammarPath),
  });
  const grammar = await registry.loadGrammar(JSON.parse(raw).scopeName);
  if (!grammar) throw new Error(`cannot load ${grammarPath}`);

  const out = { files: [] };
  for (const file of files) {
    const lines = fs.readFileSync(file, "utf8").replace(/\r\n?/g, "\n").split("\n");
    let state = textmate.INITIAL;
    const tokenized = [];
    for (const line of lines) {
      const result = grammar.tokenizeLine(line, state);
      tokenized.push(
        result.tokens.map((t) => ({
          text: line.slice(t.startIndex, t.endIndex),
          scopes: t.scopes,
        })),
      );
      state = result.ruleStack;
    }
    out.files.push({ file, lines: tokenized });
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
