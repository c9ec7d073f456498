"""The artifact store serves only complete artifacts, keyed by exactly their parameters."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from aptutils.core.store import REPO_ROOT, Store


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


def test_relative_path_variables_become_absolute_against_the_start_folder(tmp_path, monkeypatch):
    from aptutils.core.store import absolute_path_variables

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APTBOOK_DATA", "../shared/data")
    monkeypatch.setenv("APTBOOK_STORE", str(tmp_path / "already-absolute"))
    assert absolute_path_variables() == {"APTBOOK_DATA": str((tmp_path.parent / "shared" / "data").resolve())}
    assert os.environ["APTBOOK_STORE"] == str(tmp_path / "already-absolute")
    assert absolute_path_variables() == {}


def test_path_variables_are_absolute_in_this_session():
    """Whatever the command line said, this session's kernels inherit absolute paths."""
    for name in ("APTBOOK_DATA", "APTBOOK_STORE"):
        if os.environ.get(name):
            print(f"{name}={os.environ[name]}")
            assert os.path.isabs(os.environ[name])


def test_the_readme_test_command_resolves_a_relative_mirror_before_kernels_start():
    """Run pytest as the README does (relative APTBOOK_DATA, from the repository root), through the
    real tests/conftest.py, on the test above."""
    env = {**os.environ, "APTBOOK_DATA": "../shared/data"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:nbval", "-o", "addopts=",
         "tests/test_store.py::test_path_variables_are_absolute_in_this_session"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    expected = (REPO_ROOT.parent / "shared" / "data").resolve()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"APTBOOK_DATA={expected}" in result.stdout


def test_a_store_that_is_a_file_stops_with_one_line(tmp_path):
    from aptutils.core.errors import DataError

    not_a_folder = tmp_path / "store.txt"
    not_a_folder.write_text("x")
    with pytest.raises(DataError, match="is a file, not a folder"):
        Store(not_a_folder)


def test_an_unwritable_store_stops_with_one_line(tmp_path):
    """A store below a file can never be created (as root, permissions would not stop a write)."""
    from aptutils.core.errors import DataError

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(DataError, match="cannot write to the artifact store"):
        Store(blocker / "store").get_or_build("x", {}, lambda folder: None)
