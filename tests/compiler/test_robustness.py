"""Malformed input gets located diagnostics and exit 0/1 — never a traceback, never a hang."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalade.compiler import load_policy_set
from escalade.compiler.cli import main

REPO = Path(__file__).resolve().parent.parent.parent
EXAMPLES = sorted((REPO / "policies").glob("*.esc"))
VALID = (REPO / "policies" / "customer_ops.esc").read_text("utf-8")


def run_check(tmp_path: Path, data: bytes, name: str = "input.esc") -> tuple[int, str]:
    (tmp_path / name).write_bytes(data)
    result = CliRunner().invoke(main, ["check", str(tmp_path), "--format", "json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, result.output


def e001_at(tmp_path: Path, data: bytes) -> tuple[int, int]:
    folder = tmp_path / "one"
    folder.mkdir(exist_ok=True)
    (folder / "x.esc").write_bytes(data)
    found = [d for d in load_policy_set(folder).diagnostics if d.code == "E001"]
    assert found, "expected an E001"
    return found[0].span.line, found[0].span.col


def test_binary_file(tmp_path: Path) -> None:
    code, out = run_check(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert code == 1 and "binary" in out
    assert e001_at(tmp_path, b"policy p {\n \x00 }") == (2, 2)


def test_invalid_utf8(tmp_path: Path) -> None:
    code, out = run_check(tmp_path, b'person a { name "caf\xe9" }\n')
    assert code == 1 and "UTF-8" in out
    assert e001_at(tmp_path, b'person a {\n name "caf\xe9" }\n') == (2, 11)


def test_bom_and_crlf_parse(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf" + VALID.replace("\n", "\r\n").encode()
    (tmp_path / "a.esc").write_bytes(data)
    for other in EXAMPLES:
        if other.name != "customer_ops.esc":
            (tmp_path / other.name).write_bytes(other.read_bytes())
    assert load_policy_set(tmp_path).diagnostics == []


def test_empty_file_parses(tmp_path: Path) -> None:
    code, _ = run_check(tmp_path, b"")
    assert code == 0


def test_deep_parentheses(tmp_path: Path) -> None:
    cond = "(" * 5000 + "ticket.severity == critical" + ")" * 5000
    code, out = run_check(tmp_path, f"policy p {{ when {cond} }}".encode())
    assert code == 1 and "nested more than 200" in out


def test_deep_not_chain(tmp_path: Path) -> None:
    cond = "not " * 5000 + "ticket.severity == critical"
    code, out = run_check(tmp_path, f"policy p {{ when {cond} }}".encode())
    assert code == 1 and "nested more than 200" in out


def test_nesting_at_the_limit_is_accepted(tmp_path: Path) -> None:
    cond = "(" * 200 + "a.b == c" + ")" * 200
    (tmp_path / "x.esc").write_text(f"policy p {{ when {cond} }}")
    assert not [d for d in load_policy_set(tmp_path).diagnostics if d.code == "E001"]


def test_two_megabyte_line(tmp_path: Path) -> None:
    code, out = run_check(tmp_path, b'person a { name "' + b"x" * 2_000_000 + b'" }\n')
    assert code == 0
    code, out = run_check(tmp_path, b"policy p { title " + b"x" * 2_000_000 + b" }\n")
    assert code == 1 and "E001" in out


def test_unterminated_string(tmp_path: Path) -> None:
    assert e001_at(tmp_path, b'policy p {\n  title "never closed\n}\n') == (2, 9)


def test_bad_duration_message(tmp_path: Path) -> None:
    (tmp_path / "x.esc").write_text("policy p { owner primary a ack 5x }")
    [d] = [d for d in load_policy_set(tmp_path).diagnostics if d.code == "E001"]
    assert d.message.startswith("invalid duration '5x': use s, m, h or d")


# --------------------------------------------------------------------------- mutations

_TOKENS = ["{", "}", "(", ")", '"', ",", "==", "not", "and", "when", "owner", "#", "\n", "5m", "x."]


def mutate(text: str, seed: int, edits: int) -> bytes:
    """Delete, duplicate or swap tokens and bytes of a valid file."""
    rng = random.Random(seed)
    data = bytearray(text.encode())
    for _ in range(edits):
        if not data:
            break
        op = rng.randrange(6)
        i = rng.randrange(len(data))
        j = rng.randrange(len(data))
        if op == 0:
            del data[i : i + rng.randrange(1, 8)]
        elif op == 1:
            data[i:i] = data[j : j + rng.randrange(1, 16)]
        elif op == 2:
            data[i], data[j] = data[j], data[i]
        elif op == 3:
            data[i:i] = rng.choice(_TOKENS).encode()
        elif op == 4:
            data[i] = rng.randrange(256)
        else:
            words = bytes(data).split(b" ")
            a, b = rng.randrange(len(words)), rng.randrange(len(words))
            words[a], words[b] = words[b], words[a]
            data = bytearray(b" ".join(words))
    return bytes(data)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.sampled_from(EXAMPLES),
    st.integers(min_value=0, max_value=2**32),
    st.integers(min_value=1, max_value=6),
)
def test_mutated_examples_never_crash(tmp_path: Path, example: Path, seed: int, edits: int) -> None:
    target = tmp_path / "set"
    target.mkdir(exist_ok=True)
    for other in EXAMPLES:
        (target / other.name).write_bytes(other.read_bytes())
    (target / example.name).write_bytes(mutate(example.read_text("utf-8"), seed, edits))
    result = CliRunner().invoke(main, ["check", str(target)])
    assert isinstance(result.exception, SystemExit | None), result.output
    assert result.exit_code in (0, 1)
    assert "Traceback" not in result.output


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_truncation_point_of_one_line(tmp_path: Path, example: Path) -> None:
    """Cutting a file anywhere in its first statements yields diagnostics, not crashes."""
    text = example.read_text("utf-8")
    for cut in range(0, min(len(text), 400), 7):
        (tmp_path / "x.esc").write_text(text[:cut])
        result = load_policy_set(tmp_path)
        assert result.pset is not None
