"""Supply chain of the worker (docs/security.md): what a night's build installs and runs.

The lock file, buildspec.yml and the Dockerfile are read as data or text: the worker must get
its dependencies only from the hashed lock, the image must come from a digest-pinned base and
run as an unprivileged user, and scripts/build-image must refuse anything else.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tomllib

import pytest
import yaml
from aws_harness import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = ROOT / "requirements" / "worker.lock"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DIGEST_PINNED = re.compile(r"^\S+@sha256:[0-9a-f]{64}$")


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, sha256 hashes) from the pip-compile lock."""
    text = LOCK.read_text().replace("\\\n", " ")
    out: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        assert not line.startswith("-"), f"options in the lock: {line}"  # no --index-url etc.
        spec, *options = line.split()
        name, version = spec.split("==")
        hashes = [o.removeprefix("--hash=sha256:") for o in options]
        assert all(o.startswith("--hash=sha256:") for o in options), line
        out[canonicalize_name(name)] = (version, hashes)
    return out


def test_lock_pins_pyprojects_runtime_dependencies_at_the_same_versions():
    lock = locked()
    for dependency in PYPROJECT["project"]["dependencies"]:
        req = Requirement(dependency)
        (pinned,) = req.specifier  # pyproject pins every runtime dependency exactly
        assert pinned.operator == "==", dependency
        name = canonicalize_name(req.name)
        assert name in lock, f"{req.name} is missing from {LOCK.name}: run scripts/lock-worker"
        assert lock[name][0] == pinned.version, (
            f"{req.name}: pyproject.toml pins {pinned.version}, {LOCK.name} has {lock[name][0]}; "
            "run scripts/lock-worker")


def test_every_locked_file_is_hashed_and_the_build_backend_is_locked_too():
    lock = locked()
    for name, (_version, hashes) in lock.items():
        assert hashes, name
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name
    # installing nightcopy itself (--no-build-isolation) uses the locked backend
    for requirement in PYPROJECT["build-system"]["requires"]:
        req = Requirement(requirement)
        name = canonicalize_name(req.name)
        assert name in lock and req.specifier.contains(lock[name][0]), requirement
    assert "scripts/lock-worker" in LOCK.read_text().split("\n\n", 1)[0]  # how to regenerate


def test_lock_script_pins_its_tools_and_ignores_local_pip_configuration():
    script = ROOT / "scripts" / "lock-worker"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert re.search(r"pip-tools==\d+\.\d+\.\d+", text) and re.search(r"\bpip==\d+", text)
    assert "--generate-hashes" in text and "PIP_CONFIG_FILE=/dev/null" in text
    assert "requirements/worker.lock" in text


def pip_installs(commands: list[str]) -> list[list[str]]:
    out = []
    for command in commands:
        for part in re.split(r"&&|;", command):
            words = shlex.split(part)
            if len(words) >= 2 and words[0].endswith("pip") and words[1] == "install":
                out.append(words)
    return out


def assert_installs_only_from_the_lock(installs: list[list[str]], lock_path: str) -> None:
    assert installs
    for words in installs:
        if "-r" in words:  # the dependencies: the lock, hashed, wheels only
            assert words[words.index("-r") + 1] == lock_path, words
            assert "--require-hashes" in words, words
            assert "--only-binary" in words and words[words.index("--only-binary") + 1] == ":all:"
        else:  # nightcopy itself, from the checkout: nothing downloaded
            assert {"--no-deps", "--no-index", "--no-build-isolation"} <= set(words), words
    assert any("-r" in w for w in installs)


def test_buildspec_installs_dependencies_only_from_the_hashed_lock():
    spec = yaml.safe_load((ROOT / "buildspec.yml").read_text())
    commands = [c for phase in spec["phases"].values() for c in phase.get("commands", [])]
    assert_installs_only_from_the_lock(pip_installs(commands), "requirements/worker.lock")


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in
            joined.splitlines() if line.strip()]


def test_image_base_is_pinned_by_digest():
    froms = [args.split()[0] for instr, args in dockerfile() if instr == "FROM"]
    assert froms
    for image in froms:
        assert DIGEST_PINNED.match(image), f"FROM {image} is not pinned by digest"
        assert not re.search(r"@sha256:0{64}", image)


def test_image_installs_only_from_the_lock():
    runs = [args for instr, args in dockerfile() if instr == "RUN"]
    lock_copies = [args for instr, args in dockerfile() if instr == "COPY"
                   and args.split()[0] == "requirements/worker.lock"]
    assert len(lock_copies) == 1
    assert_installs_only_from_the_lock(pip_installs(runs), lock_copies[0].split()[1])


def test_image_runs_as_an_unprivileged_user():
    instructions = dockerfile()
    users = [(i, args.strip()) for i, (instr, args) in enumerate(instructions) if instr == "USER"]
    assert users, "the Dockerfile sets no USER: the worker would run as root"
    last_index, user = users[-1]
    assert user.split(":")[0] not in ("root", "0"), user
    # nothing runs as root after it (a later RUN would, but only at build time; keep USER last)
    assert all(instr != "RUN" for instr, _ in instructions[last_index:])
    created = " ".join(args for instr, args in instructions if instr == "RUN")
    uid = user.split(":")[0]
    assert re.search(rf"useradd\b.*--uid {uid}\b.*\bnightcopy\b", created), created
    # in CodeBuild, the inline buildspec runs the commands as that user
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "asl_substitute", ROOT / "scripts" / "asl_substitute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    template = module.load_template(ROOT / "template.yaml")
    inline = template["Resources"]["WorkerProject"]["Properties"]["Source"].value[2]["BuildSpec"]
    assert yaml.safe_load(inline)["run-as"] == "nightcopy"


@pytest.mark.parametrize(("base", "message"), [
    ("python:3.11-slim-bookworm", "not pinned by digest"),
    ("python:3.11-slim-bookworm@sha256:" + "0" * 64, "placeholder"),
])
def test_build_image_refuses_an_unpinned_base(tmp_path, base, message):
    """Before docker is ever called (it is not on PATH here: reaching it would fail differently)."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "build-image", tmp_path / "scripts" / "build-image")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "Dockerfile").write_text(f"FROM {base}\nUSER 10001\n")
    proc = subprocess.run(["bash", str(tmp_path / "scripts" / "build-image")],
                          capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert message in proc.stderr and "docker: command not found" not in proc.stderr
    assert proc.stderr.count("\n") == 1  # one line, no trace


def test_the_worker_image_is_built_for_the_codebuild_fleet():
    """An arm64 laptop would otherwise build an image CodeBuild's x86 fleet cannot run."""
    script = (ROOT / "scripts" / "build-image").read_text()
    builds = [line for line in script.splitlines() if line.strip().startswith("docker build")]
    assert builds and all("--platform linux/amd64" in line for line in builds)
    from test_aws_template import RES

    assert RES["WorkerProject"]["Properties"]["Environment"]["Type"] == "LINUX_CONTAINER"


def test_the_rds_ca_bundle_is_trusted_only_with_its_pinned_checksum(tmp_path):
    """scripts/rds-ca-bundle (run by build-image and the git-mode buildspec): a bundle whose
    sha256 is not the pinned one fails the build and is not written where the image takes it."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "requirements").mkdir()
    shutil.copy(ROOT / "scripts" / "rds-ca-bundle", tmp_path / "scripts" / "rds-ca-bundle")
    bundle = tmp_path / "served.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    out = tmp_path / "worker-ca" / "rds-ca-bundle.pem"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(tmp_path / "scripts" / "rds-ca-bundle"), *args],
                              capture_output=True, text=True, timeout=30,
                              env={"PATH": "/usr/bin:/bin",
                                   "NIGHTCOPY_CA_BUNDLE_URL": bundle.as_uri()})

    missing = run(str(out))
    assert missing.returncode == 1 and "the pin in requirements/rds-ca-bundle.sha256 is " \
        "missing" in missing.stderr and not out.exists()
    assert run("--accept", str(out)).returncode == 0
    assert run(str(out)).returncode == 0 and out.read_text() == bundle.read_text()
    out.unlink()
    bundle.write_text(bundle.read_text() + "-----BEGIN CERTIFICATE-----\nMIIC\n"
                      "-----END CERTIFICATE-----\n")  # a substituted or rotated bundle
    changed = run(str(out))
    assert changed.returncode == 1 and "review its 2 certificates" in changed.stderr
    assert not out.exists()
    bundle.write_text("<html>not a bundle</html>")
    assert "holds no PEM certificate" in run("--accept", str(out)).stderr
