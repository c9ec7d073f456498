"""The artifact store serves only complete artifacts, keyed by exactly their parameters."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from aptutils.core.store import Store


def test_complete_write_is_served_with_its_parameters(tmp_path):
    store = Store(tmp_path)
    with store.writing("demo", {"a": 1}) as folder:
        (folder / "x.txt").write_text("done")
    found = store.get("demo", {"a": 1})
    assert (found / "x.txt").read_text() == "done"
    assert '"a": 1' in (found / "params.json").read_text()
    assert store.get("demo", {"a": 2}) is None
    assert store.get("other", {"a": 1}) is None


def test_failed_write_leaves_nothing_to_serve(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(RuntimeError):
        with store.writing("demo", {"a": 1}) as folder:
            (folder / "half.txt").write_text("half")
            raise RuntimeError("interrupted")
    assert store.get("demo", {"a": 1}) is None
    assert list((tmp_path / "tmp").iterdir()) == []


def test_killed_writer_leaves_nothing_to_serve(tmp_path):
    script = textwrap.dedent(f"""
        import time
        from aptutils.core.store import Store
        with Store({str(tmp_path)!r}).writing("demo", {{"a": 1}}) as folder:
            (folder / "half.txt").write_text("half")
            print("writing", flush=True)
            time.sleep(60)
    """)
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert Store(tmp_path).get("demo", {"a": 1}) is None
    built = Store(tmp_path).get_or_build("demo", {"a": 1}, lambda f: (f / "x.txt").write_text("new"))
    assert (built / "x.txt").read_text() == "new" and not (built / "half.txt").exists()


def test_get_or_build_builds_once(tmp_path):
    store, calls = Store(tmp_path), []
    for _ in range(2):
        store.get_or_build("demo", {"a": 1}, lambda f: calls.append(f))
    assert len(calls) == 1


def test_key_ignores_parameter_order(tmp_path):
    store = Store(tmp_path)
    assert store.path("demo", {"a": 1, "b": 2}) == store.path("demo", {"b": 2, "a": 1})
