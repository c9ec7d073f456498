"""The package is a house in layers: each layer imports only from itself and the layers below."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aptutils"
LAYERS = ("core", "data", "models", "training", "readout", "analysis", "reports", "plotting")
TOP = len(LAYERS)  # notebooks.py, parts.py and __main__.py: the book's tooling, above every layer


def layer_of(module: str) -> int:
    """aptutils.<layer>.<name> -> its layer's rank; top-level modules rank above all layers."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) >= 2 and parts[1] in LAYERS else TOP


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(relative.parts).removesuffix(".__init__")


def imported_modules(path: Path) -> set[str]:
    """The aptutils modules a file imports (relative imports resolved), lazy imports included."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if node.level == 0 and not target.startswith("aptutils"):
                continue
            found |= {f"{target}.{a.name}" if node.module is None else target for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("aptutils")}
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_from_lower_layers(path):
    own = layer_of(module_name(path))
    upward = [m for m in imported_modules(path) if layer_of(m) > own]
    assert not upward, f"{module_name(path)} (layer {own}) imports from above: {upward}"


def test_every_module_sits_in_a_layer_or_is_tooling():
    loose = [p.name for p in PACKAGE.glob("*.py")]
    assert sorted(loose) == ["__init__.py", "__main__.py", "notebooks.py", "parts.py", "sweeps.py"]
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(LAYERS)


def test_no_import_cycles_between_modules():
    graph = {module_name(p): {m for m in imported_modules(p)} for p in MODULES}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail + [node, nxt]))
            if nxt in graph and nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


def test_layer_rule_catches_an_upward_import(tmp_path):
    assert layer_of("aptutils.reports.ch2_apt") > layer_of("aptutils.analysis.apt")
    fake = PACKAGE / "core" / "upward_probe_for_test.py"
    fake.write_text("from ..reports.ch2_apt import c1_verdict\n")
    try:
        assert "aptutils.reports.ch2_apt" in imported_modules(fake)
    finally:
        fake.unlink()


def test_no_module_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in MODULES
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"modules over 400 lines: {long}"
