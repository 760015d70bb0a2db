"""``escalade test`` results for tools: a JSON document and JUnit XML for CI.

JSON (``--format json``, stable, version 1)::

    {"version": 1,
     "summary": {"passed": 11, "failed": 1, "files": 4, "policies": 9, "exercised": 8},
     "tests": [{"file": "policies/x_test.esc", "name": "...", "line": 3, "column": 1,
                "passed": false, "failures": ["policies/x_test.esc:5:3: test '...': ..."]}],
     "errors": [{"file": "policies/y_test.esc", "message": "...:2:7: syntax error ..."}],
     "unexercised": ["policy_name"]}

JUnit XML (``--junit FILE``): one ``<testsuite>`` per test file, one ``<testcase>`` per
``test "..."`` block (``classname`` is the file, ``line`` where the block starts), a
``<failure>`` whose ``message`` is the first located failure and whose text holds them
all; a file that does not parse is a suite with one ``<error>``.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from escalade.compiler.policytest import TestRun

__all__ = ["render_json", "render_junit", "test_document"]

# Characters XML 1.0 cannot hold at all (a test name may spell them as \u0001 escapes).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    """``text`` with what XML cannot hold shown as a ``\\uXXXX`` escape."""
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def test_document(run: TestRun, policies: Sequence[str]) -> dict[str, Any]:
    """The JSON document of a run; ``policies`` are the pack's policy names."""
    unexercised = sorted(name for name in policies if name not in run.exercised)
    return {
        "version": 1,
        "summary": {
            "passed": run.passed,
            "failed": run.failed,
            "files": len(run.files),
            "policies": len(policies),
            "exercised": len(policies) - len(unexercised),
        },
        "tests": [
            {
                "file": r.file,
                "name": r.name,
                "line": r.line,
                "column": r.column,
                "passed": r.passed,
                "failures": list(r.failures),
            }
            for r in run.results
        ],
        "errors": [{"file": file, "message": message} for file, message in run.errors.items()],
        "unexercised": unexercised,
    }


def render_json(run: TestRun, policies: Sequence[str]) -> str:
    """:func:`test_document` as indented JSON text (one document, newline-terminated)."""
    return json.dumps(test_document(run, policies), indent=2, ensure_ascii=False) + "\n"


def _suite(file: str, run: TestRun) -> ET.Element:
    suite = ET.Element("testsuite", name=_xml(file))
    cases = [r for r in run.results if r.file == file]
    failures = sum(not r.passed for r in cases)
    error = run.errors.get(file)
    seconds = sum(r.seconds for r in cases)
    for result in cases:
        case = ET.SubElement(
            suite,
            "testcase",
            name=_xml(result.name),
            classname=_xml(file),
            file=_xml(file),
            line=str(result.line),
            time=f"{result.seconds:.3f}",
        )
        if result.failures:
            first = _xml(result.failures[0])
            failure = ET.SubElement(case, "failure", message=first, type="expectation")
            failure.text = _xml("\n".join(result.failures))
    if error is not None:
        shown = _xml(file)
        case = ET.SubElement(suite, "testcase", name="(file)", classname=shown, file=shown)
        first = _xml(error.splitlines()[0])
        ET.SubElement(case, "error", message=first, type="syntax").text = _xml(error)
    suite.set("tests", str(len(cases) + (error is not None)))
    suite.set("failures", str(failures))
    suite.set("errors", str(int(error is not None)))
    suite.set("skipped", "0")
    suite.set("time", f"{seconds:.3f}")
    return suite


def render_junit(run: TestRun) -> bytes:
    """The run as JUnit XML (UTF-8, with an XML declaration)."""
    root = ET.Element("testsuites", name="escalade test")
    for file in run.files:
        root.append(_suite(file, run))
    root.set("tests", str(sum(int(s.get("tests", "0")) for s in root)))
    root.set("failures", str(sum(int(s.get("failures", "0")) for s in root)))
    root.set("errors", str(sum(int(s.get("errors", "0")) for s in root)))
    ET.indent(root)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text + b"\n"
