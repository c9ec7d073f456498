"""The benchmarks are run by hand (`benchmarks/run.py`), so nothing else notices when they fall
behind the package: every aptutils name they import, at the top or inside a function, must
exist, and every benchmark must run end to end (at a tiny size, on the smoke profile: the figures
mean nothing there and are not checked, only that each benchmark gives its lines)."""
import ast
import importlib
import re
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent.parent / "benchmarks"
BENCHMARKS = sorted(HERE.glob("*.py"))
LINE = re.compile(r"^[\w .-]+: [\d,.]+ [\w/]+ \(baseline [^)]*(, ratio \d+\.\d\dx)?, target [^)]+\)$")


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


@pytest.fixture(scope="module")
def run_module():
    sys.path.insert(0, str(HERE))
    try:
        yield importlib.import_module("run")
    finally:
        sys.path.remove(str(HERE))


def test_every_benchmark_runs_at_a_tiny_size_and_prints_its_lines(run_module, capsys):
    lines = run_module.run_all("tiny")
    printed = capsys.readouterr().out
    names = [line.name for line in lines]
    for prefix, count in (("pretrain vs plain", 2), ("mfu vs", 2), ("readout", 4), ("probe", 2),
                          ("external reading", 1)):
        assert sum(name.startswith(prefix) for name in names) == count, (prefix, names)
    assert all(line.value > 0 for line in lines)
    import aptutils.readout.counting as counting  # the bf16 floor leaves the exact argmax behind
    assert counting.sliced_argmax.__qualname__ == "sliced_argmax"
    for line in lines:
        assert LINE.match(str(line)), str(line)
        assert str(line) in printed


def test_a_line_reads_name_value_baseline_ratio_target(run_module):
    line = run_module.Line("pretrain vs plain fp32", 18855.4, "tokens/s", "plain Trainer fp32 6,119 "
                           "tokens/s", 3.0814, ">= 3.5x")
    assert str(line) == ("pretrain vs plain fp32: 18,855 tokens/s (baseline plain Trainer fp32 "
                         "6,119 tokens/s, ratio 3.08x, target >= 3.5x)")
    assert str(run_module.Line("book 01", 18, "s", "none", None, "none")) == \
        "book 01: 18 s (baseline none, target none)"


def test_the_full_run_puts_the_latest_run_first_and_keeps_the_rest(run_module, tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Measured results\n\nMachine: older.\n\n## Counting pass\n\nold table\n")
    first = [run_module.Line("book total", 20.5, "min", "none", None, "<= 60 min")]
    run_module.write_results(first, results)
    second = [run_module.Line("book total", 19.25, "min", "none", None, "<= 60 min")]
    run_module.write_results(second, results)
    text = results.read_text()
    assert text.startswith("# Measured results\n\n" + run_module.LATEST_START)
    assert text.count(run_module.LATEST_START) == 1 and "19.25 min" in text and "20.50" not in text
    assert text.index(run_module.LATEST_END) < text.index("Machine: older.") < text.index("old table")
