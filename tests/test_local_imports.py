"""Function-local imports in Coral say why they are local.

An import inside a function hides a dependency from the reader and the layer
contract's reader alike; it is allowed where it defers something heavy or optional
(inference, supervision, PyAV, aiortc, onnxruntime, FastAPI, ...) or breaks an
import cycle, and then a comment says which: on the import itself or directly above
the group of imports it belongs to.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("coral_inference", "coral_workflows")


def _comment_of(lines: list[str], group: list[ast.stmt]) -> str | None:
    for statement in group:
        for number in range(statement.lineno, (statement.end_lineno or statement.lineno) + 1):
            if "#" in lines[number - 1]:
                return lines[number - 1].split("#", 1)[1].strip()
    above = group[0].lineno - 2
    if above >= 0 and lines[above].strip().startswith("#"):
        return lines[above].strip().lstrip("#").strip()
    return None


def _groups(body: list[ast.stmt]) -> list[list[ast.stmt]]:
    """Runs of consecutive import statements in one statement list."""
    groups: list[list[ast.stmt]] = []
    run: list[ast.stmt] = []
    for statement in body:
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            run.append(statement)
            continue
        if run:
            groups.append(run)
        run = []
    if run:
        groups.append(run)
    return groups


def function_local_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, imported module, its comment or None) for each import inside a function."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found: list[tuple[int, str, str | None]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for field in ("body", "orelse", "finalbody", "handlers"):
            body = getattr(node, field, None)
            if in_function and isinstance(body, list):
                for group in _groups([s for s in body if isinstance(s, ast.stmt)]):
                    comment = _comment_of(lines, group)
                    for statement in group:
                        if isinstance(statement, ast.ImportFrom):
                            module = statement.module or "."
                        else:
                            module = ", ".join(alias.name for alias in statement.names)
                        found.append((statement.lineno, module, comment))
        for child in ast.iter_child_nodes(node):
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(ast.parse(source), False)
    return found


def test_every_function_local_import_says_why():
    missing = [
        f"{path.relative_to(ROOT)}:{line}: import of {module}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, module, comment in function_local_imports(path)
        if not comment
    ]
    assert not missing, (
        "function-local imports without a comment naming the heavy/optional dependency or the "
        "cycle they defer (hoist the import when neither applies):\n" + "\n".join(missing)
    )


def test_the_rule_sees_a_bare_local_import_and_accepts_a_commented_one(tmp_path):
    module = tmp_path / "probe.py"
    module.write_text(
        "def bare():\n"
        "    import json\n"
        "    return json\n"
        "\n"
        "def explained():\n"
        "    # heavy: PyAV loads FFmpeg's libraries\n"
        "    import av\n"
        "    import av.container\n"
        "    return av\n"
        "\n"
        "def inline():\n"
        "    import onnxruntime  # heavy: the runtime's shared libraries\n"
        "    return onnxruntime\n"
    )
    found = {line: comment for line, _, comment in function_local_imports(module)}
    assert found == {
        2: None,
        7: "heavy: PyAV loads FFmpeg's libraries",
        8: "heavy: PyAV loads FFmpeg's libraries",
        12: "heavy: the runtime's shared libraries",
    }
