"""The import contracts in pyproject.toml ([tool.importlinter]) hold, and they catch violations.

The layers (cli > sample > ops > aws > engine > errors, secrets), the engine without click, rich
or boto3, ops without click or rich, aws without click, rich or psycopg2, boto3 only in aws, and
Lambdas without nightcopy or psycopg2. import-linter reads the code, it imports nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        # ahead of the editable install's finder (appended to sys.meta_path): the copy is read
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", "pyproject.toml"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three packages, laid out as installed, and pyproject.toml: a copy to break."""
    root = tmp_path_factory.mktemp("layers")
    ignore = shutil.ignore_patterns("__pycache__", "tests", "*.pyc")
    shutil.copytree(ROOT / "src" / "nightcopy", root / "pristine" / "nightcopy", ignore=ignore)
    shutil.copytree(ROOT / "notifier", root / "pristine" / "nightcopy_notifier", ignore=ignore)
    shutil.copytree(ROOT / "starter", root / "pristine" / "nightcopy_starter", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", root / "pristine" / "pyproject.toml")
    return root / "pristine"


def test_the_unchanged_copy_keeps_the_contracts(project_copy: Path):
    """The copy is read, not the installed packages (else the next test proves nothing)."""
    result = lint_imports(project_copy, pythonpath=project_copy)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module, line, contract", [
    ("nightcopy/engine/events.py", "import boto3", "The engine is a library"),
    ("nightcopy/engine/table_copy.py", "import rich.console", "The engine is a library"),
    ("nightcopy/engine/table_model.py", "from nightcopy.ops import plan", "Layers"),
    ("nightcopy/aws/ssm.py", "from nightcopy.ops import config_file", "Layers"),
    ("nightcopy/ops/plan.py", "import click", "Operations use no click or rich"),
    ("nightcopy/ops/history.py", "import boto3", "Every boto3 call is in nightcopy.aws"),
    ("nightcopy/cli/render.py", "import botocore.exceptions",
     "Every boto3 call is in nightcopy.aws"),
    ("nightcopy/aws/ssm.py", "import psycopg2", "The AWS adapters use no click, rich or psycopg2"),
    ("nightcopy/ops/validate.py", "from nightcopy.sample import dataset", "Layers"),
    ("nightcopy_notifier/app.py", "import nightcopy.engine.events", "The Lambdas never import"),
    ("nightcopy_starter/nightly.py", "import psycopg2", "The Lambdas never import"),
])
def test_a_forbidden_import_breaks_its_contract(project_copy: Path, tmp_path: Path, module: str,
                                                line: str, contract: str):
    broken = tmp_path / "broken"
    shutil.copytree(project_copy, broken)
    path = broken / module
    path.write_text(path.read_text() + f"\n{line}  # the violation under test\n")
    result = lint_imports(broken, pythonpath=broken)
    assert result.returncode == 1, result.stdout + result.stderr
    broken_lines = [x for x in result.stdout.splitlines() if x.endswith(" BROKEN")]
    assert any(x.startswith(contract) for x in broken_lines), result.stdout
    assert module.replace("/", ".").removesuffix(".py") in result.stdout


def test_a_new_subpackage_must_be_placed_in_a_layer(project_copy: Path, tmp_path: Path):
    broken = tmp_path / "broken"
    shutil.copytree(project_copy, broken)
    (broken / "nightcopy" / "extras").mkdir()
    (broken / "nightcopy" / "extras" / "__init__.py").write_text("")
    result = lint_imports(broken, pythonpath=broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "nightcopy.extras" in result.stdout + result.stderr
