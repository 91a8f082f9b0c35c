"""A plain (non-editable) install carries every module: what CodeBuild's `pip install .` and the
worker image run. Editable installs, which the suite uses, would hide a missing package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed_for_setuptools():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    src = ROOT / "src"
    on_disk = {".".join(p.parent.relative_to(src).parts) for p in src.rglob("__init__.py")}
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"


def test_the_wheel_holds_every_module(tmp_path):
    # Built from a clean copy: setuptools' build/ folder in the checkout would hide a gap.
    tree = tmp_path / "tree"
    tree.mkdir()
    for part in ("pyproject.toml", "README.md", "src", "notifier", "starter"):
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy
        copy(ROOT / part, tree / part, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                          if (ROOT / part).is_dir() else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(tree)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("nightcopy-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(ROOT / "src")) for p in (ROOT / "src").rglob("*.py")}
    assert modules <= names, f"missing from the wheel: {sorted(modules - names)}"
