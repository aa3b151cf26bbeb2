"""A newcomer's editor can follow every ``mrnet.*`` import: a static resolver sees the installed package.

jedi (the engine behind many editors' go-to-definition) is pointed at this interpreter's environment,
as an editor is at the project's venv, and must resolve each ``mrnet.*`` module imported anywhere in the
repository to a file of this checkout. An import-hook editable install (setuptools' default for a
package-dir map) resolves nothing here; ``src/mrnet`` installed as a plain path entry resolves all.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

jedi = pytest.importorskip("jedi", reason="jedi is in the test extra (pyproject.toml)")

REPO = Path(__file__).resolve().parents[2]
FOLDERS = [p.name for p in sorted((REPO / "src" / "mrnet").iterdir())] + ["tests", "benchmarks"]


def mrnet_imports(path: Path) -> list[tuple[int, int, str]]:
    """(line, column, module) of each ``mrnet.*`` module named by an import in ``path``; the column
    points into the module's last dotted part, where go-to-definition lands on the module."""
    lines = path.read_text().splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("mrnet."):
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names if alias.name.startswith("mrnet.")]
        else:
            continue
        for module in modules:
            text = lines[node.lineno - 1]
            column = text.find(module, node.col_offset)
            assert column >= 0, f"{path}:{node.lineno}: {module} is not on the statement's first line"
            found.append((node.lineno, column + len(module) - 1, module))
    return found


def test_every_mrnet_import_resolves_to_this_checkout():
    environment = jedi.create_environment(sys.executable, safe=False)
    # No project paths added: only what the installed environment itself puts on sys.path counts.
    project = jedi.Project(REPO, environment_path=sys.executable, smart_sys_path=False, added_sys_path=())
    checked, unresolved = 0, []
    for folder in FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            imports = mrnet_imports(path)
            if not imports:
                continue
            script = jedi.Script(path.read_text(), path=path, project=project, environment=environment)
            for line, column, module in imports:
                targets = {
                    d.module_path.resolve() for d in script.goto(line, column, follow_imports=True) if d.module_path
                }
                checked += 1
                if not targets or not all(t.is_relative_to(REPO) for t in targets):
                    unresolved.append(
                        f"{path.relative_to(REPO)}:{line}: {module} -> {sorted(map(str, targets)) or 'nothing'}"
                    )
    assert checked > 100, f"only {checked} mrnet imports found: is the scan looking in the right folders?"
    assert not unresolved, f"{len(unresolved)} of {checked} mrnet imports do not resolve statically:\n" + "\n".join(
        unresolved[:20]
    )
