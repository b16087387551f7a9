"""The dependency rule between the four packages, checked on every import statement (README: Dependency rule).

agent → evals, tools, memory · evals → tools, memory · tools → memory (public API only) · memory → none of them.
Nothing imports agent except agent itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("agent", "evals", "tools", "memory")
ALLOWED = {
    "agent": {"agent", "evals", "tools", "memory"},
    "evals": {"evals", "tools", "memory"},
    "tools": {"tools", "memory"},
    "memory": {"memory"},
}


def imported_names(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    """(line, dotted name) for every import in the file, at any depth; relative imports resolved."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: -node.level]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                found.append((node.lineno, f"{base}.{alias.name}" if alias.name != "*" else base))
    return found


def violations(root: Path = REPO) -> list[str]:
    """Every import under root's four packages that breaks the rule, as `file:line: what it imports`."""
    problems: list[str] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            parts = list(rel.with_suffix("").parts)
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if parts[-1] == "__init__":
                module += ".__init__"  # so a relative import resolves against the package itself
            for line, name in imported_names(ast.parse(path.read_text(), str(rel)), module):
                top = name.split(".")[0]
                if top not in PACKAGES:
                    continue
                where = f"{rel}:{line}"
                if top not in ALLOWED[package]:
                    problems.append(f"{where}: {package}/ imports {name}")
                elif package == "tools" and top == "memory":
                    private = [p for p in name.split(".")[1:] if p.startswith("_")]
                    if name.split(".")[1:2] == ["schema"] or private:
                        problems.append(f"{where}: tools/ imports {name} (memory's public API only: no "
                                        f"`_` names, not memory.schema)")
    return problems


def test_every_import_follows_the_dependency_rule() -> None:
    problems = violations()
    assert not problems, "imports that break the dependency rule:\n" + "\n".join(problems)


def test_the_checker_reports_each_kind_of_violation_with_file_and_line(tmp_path: Path) -> None:
    files = {
        "agent/ok.py": "from evals import report\nimport tools.models\nfrom memory import Store\n",
        "evals/bad.py": "import os\n\ndef f():\n    from agent.runner import start\n",
        "tools/bad.py": "from memory.schema import MIGRATIONS\nfrom memory.store import _alive\nimport evals\n",
        "memory/sub/bad.py": "from ..store import Store\nfrom ...tools import deploy\n",
    }
    for name, source in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
    problems = violations(tmp_path)
    assert [p.split(": ")[0] for p in problems] == [
        "evals/bad.py:4", "tools/bad.py:1", "tools/bad.py:2", "tools/bad.py:3", "memory/sub/bad.py:2"]
    assert "imports agent.runner.start" in problems[0]
    assert "memory/ imports tools.deploy" in problems[-1]
