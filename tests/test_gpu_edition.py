"""The GPU edition's script runs end to end on the CPU at the smoke size, and returns what the
device tool can bring back: at most 8 files, 16 MiB each, the chapters complete."""
import json
import os
import subprocess

from aptutils.core.store import REPO_ROOT
from aptutils.parts import Part, import_part, part_problems


def test_the_gpu_edition_script_executes_chapters_into_a_returnable_folder(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "APTBOOK_STORE": str(tmp_path / "store")}
    result = subprocess.run(["bash", "benchmarks/gpu_edition.sh", "run", str(out), "-p", "profile", "smoke",
                             "--chapters", "04"], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["04_clustering.ipynb", "extras.tar.gz"]
    assert all((out / name).stat().st_size < 16 * 2**20 for name in files)
    smoke_part = Part("gpu", "At BERT-6 width on one GPU", tmp_path / "part", "smoke")
    assert import_part(smoke_part, out) == ["04_clustering"]
    assert part_problems(smoke_part, expected=["04_clustering"]) == []
    assert "04_clustering" in json.loads(smoke_part.record.read_text())
    exported = {p.suffix for p in (smoke_part.folder / "exports" / "04_clustering").iterdir()}
    assert {".csv", ".png", ".svg"} <= exported


def test_the_gpu_edition_script_names_its_usage():
    result = subprocess.run(["bash", "benchmarks/gpu_edition.sh"], cwd=REPO_ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 2 and "prepare" in result.stderr and "run OUT" in result.stderr
