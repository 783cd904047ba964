"""The one-way layers: `lint-imports` (pyproject's contracts, also run by `make test`) for the packages,
and here for service.py, which import-linter cannot take as a root (it is a module, not a package)."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

LINT = str(Path(sys.executable).parent / "lint-imports")
SERVING_ROOTS = {"balls", "inference"}  # project layers the service may import
FORBIDDEN = {"training", "export", "benchmarks", "tests", "torch", "onnx"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_service_imports_only_the_core_and_inference():
    roots = imported_roots(ROOT / "service.py")
    assert roots & FORBIDDEN == set(), f"service.py imports {sorted(roots & FORBIDDEN)}"
    assert SERVING_ROOTS <= roots


def test_import_contracts_hold_and_a_wrong_way_import_is_named(tmp_path):
    ok = subprocess.run([LINT, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0 and "0 broken" in ok.stdout, ok.stdout[-2000:]
    # a copy of the packages with one wrong-way import: the core's contract breaks and names it
    for name in ("balls", "training", "export", "inference", "benchmarks", "tests"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(tmp_path / "balls" / "digest.py", "a") as f:
        f.write("\nimport training.networks  # noqa\n")
    bad = subprocess.run([LINT, "--no-cache"], cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode != 0 and "balls is not allowed to import training" in bad.stdout, bad.stdout[-2000:]
    assert "balls.digest -> training.networks" in bad.stdout, bad.stdout[-2000:]
