"""The shape of the package: layers import only downwards, no import cycles, modules a reader can hold.

    core  <-  manifests  <-  store  <-  extract  <-  train

``train`` uses ``extract`` for one thing, ``mrnet-predict``'s feature engines; nothing imports ``train``
but its own modules, and nothing under ``core`` imports the rest.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The package folders are listed once, as the links in src/mrnet (pyproject.toml finds them there); this
# tuple only orders them, bottom layer first.
LAYERS = ("core", "manifests", "store", "extract", "train")
MAX_LINES = 400


def test_layers_order_every_package_of_src_mrnet():
    links = sorted((REPO / "src" / "mrnet").iterdir())
    assert sorted(LAYERS) == [link.name for link in links], "add the new package to LAYERS, in its layer's place"
    for link in links:
        # Relative links, to the folder of the same name: a clone anywhere (and a wheel) gets the real files.
        assert link.is_symlink() and not Path(link.readlink()).is_absolute(), f"{link} must be a relative symlink"
        assert link.resolve() == REPO / link.name, f"{link} must point at ../../{link.name}"
        assert (link / "py.typed").is_file(), f"{link.name}/py.typed is missing (PEP 561: type checkers use its types)"


def modules() -> dict[str, Path]:
    """``mrnet.<package>.<module>`` -> file, for every module of the installed packages."""
    found = {}
    for package in LAYERS:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(("mrnet", *parts[:-1])) if parts[-1] == "__init__" else ".".join(("mrnet", *parts))
            found[name] = path
    return found


def imports(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """Modules of ``known`` that the module ``name`` imports anywhere in its body (lazy imports too)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


GRAPH = {name: imports(path, name, modules()) for name, path in modules().items()}


def layer(module: str) -> int:
    return LAYERS.index(module.split(".")[1])


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_go_down_the_layers(module):
    upward = sorted(m for m in GRAPH[module] if layer(m) > layer(module))
    assert not upward, f"{module} imports {upward}, which sit above it ({' <- '.join(LAYERS)})"


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1 visiting, 2 done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_modules_stay_readable(module):
    lines = len(modules()[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it by job (docs/architecture.md)"
