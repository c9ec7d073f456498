"""The benchmark scripts are run by hand, so nothing else notices when they fall behind the
package: every aptutils name they import, at the top or inside a function, must exist."""
import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py"))


def aptutils_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every `from aptutils... import name` in a script."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aptutils"):
            found += [(node.module, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_imports_resolve(path):
    imports = aptutils_imports(path)
    missing = [f"{module}.{name}" for module, name in imports
               if not hasattr(importlib.import_module(module), name)]
    assert not missing, f"{path.name} imports names aptutils no longer has: {missing}"


def test_the_check_sees_a_stale_import(tmp_path):
    stale = tmp_path / "stale.py"
    stale.write_text("def f():\n    from aptutils.core.params import no_such_name\n")
    assert aptutils_imports(stale) == [("aptutils.core.params", "no_such_name")]
    assert not hasattr(importlib.import_module("aptutils.core.params"), "no_such_name")
