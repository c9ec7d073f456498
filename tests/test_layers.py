"""The package is a house in layers: each layer imports only from itself and the layers below."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aptutils"
LAYERS = ("core", "data", "models", "training", "readout", "analysis", "reports", "plotting")
TOP = len(LAYERS)  # chapter.py, notebooks.py, parts.py, sweeps.py, __main__.py, plugins/: above all


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
    assert sorted(loose) == ["__init__.py", "__main__.py", "chapter.py", "notebooks.py", "parts.py",
                            "sweeps.py"]
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders == sorted(LAYERS + ("plugins",))


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


# Below the chapters' reports, functions take the recipe they need (core.recipes), never the whole
# Settings; core/params.py is where Settings are made and turned into recipes.
SETTINGS_HOME = PACKAGE / "core" / "params.py"


def settings_arguments(path: Path) -> list[str]:
    """`function(argument)` for every argument named `settings` or annotated with `Settings`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            arguments = node.args
            for argument in arguments.posonlyargs + arguments.args + arguments.kwonlyargs:
                annotation = ast.unparse(argument.annotation) if argument.annotation else ""
                if argument.arg == "settings" or "Settings" in annotation:
                    found.append(f"{getattr(node, 'name', 'lambda')}({argument.arg})")
    return found


BELOW_REPORTS = [p for p in MODULES if layer_of(module_name(p)) < LAYERS.index("reports")
                 and p != SETTINGS_HOME]


@pytest.mark.parametrize("path", BELOW_REPORTS, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_below_reports_takes_settings(path):
    taken = settings_arguments(path)
    assert not taken, f"{module_name(path)} takes the whole Settings: {taken}; pass a recipe"


def test_settings_rule_catches_a_settings_argument(tmp_path):
    fake = tmp_path / "fake.py"
    fake.write_text("def f(recipe, settings):\n    pass\n\n"
                    "def g(x: 'Settings'):\n    pass\n\nh = lambda settings: 1\n")
    assert settings_arguments(fake) == ["f(settings)", "g(x)", "lambda(settings)"]
    fake.write_text("def f(recipe: 'ProbeRecipe', data):\n    pass\n")
    assert settings_arguments(fake) == []
