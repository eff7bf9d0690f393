# Copyright 2026 github-runner contributors
# See LICENSE file for licensing details.
"""The pack stage: charmcraft's own code loads, builds and packs the charm; this checks the result.

Run with the Python of charmcraft's virtual environment (tests/pack/pack.sh makes it):

    python tests/pack/charmcraft_pack.py --project . --work DIR --out DIR

1. **Project model and build planner, every platform** (charmcraft's code only): charmcraft's
   application object, its project service and its build plan service load `charmcraft.yaml`,
   with charmcraft's part plugins registered (charmcraft drops the `charm` plugin for bases it
   does not support, so an unsupported base fails here), once per platform.
2. **Build and pack** (charmcraft's code, one check replaced): `charmcraft pack
   --destructive-mode --platform <the first platform for this host's architecture>` runs in a
   copy of the project: craft-parts runs the `charm` plugin, whose build command is charmcraft's
   charm builder (`charm_builder.py`: hooks, dispatch, the venv with every requirement), then
   charmcraft's package service writes `manifest.yaml`, `metadata.yaml`, `config.yaml` and
   `actions.yaml` and zips the prime directory. The one piece of code that is not charmcraft's
   is `_allow_this_host`: charmcraft (craft-application's lifecycle service) refuses to build an
   Ubuntu base on any other distribution, so on Debian that single check is replaced by one
   that logs the mismatch. The venv is therefore built with this host's Python; the functional
   test runs it on the same distribution, and a release is packed with plain `charmcraft pack`
   on Ubuntu (see the README).
3. **Analysis** (charmcraft's code): `charmcraft analyse --format=json` on the artifact; every
   linter must say ok, or not applicable with its reason written down in `NOT_APPLICABLE`.
4. **Content** (this script): the artifact holds what the charm reads at run time and nothing
   it must not ship.

Everything is written under `--work` and `--out`, never into the project.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import charmcraft
import craft_application.services.lifecycle
import craft_parts
import craft_platforms
import yaml
from craft_cli import EmitterMode, emit

# charmcraft's application module (`charmcraft.application.main` is also a function's name).
charmcraft_main = importlib.import_module("charmcraft.application.main")

# Linters that do not apply to the artifact, and why (anything else must be "ok").
NOT_APPLICABLE: dict[str, str] = {
    "additional-files": (
        "it compares the charm with the build's stage directory, which a .charm does not "
        "carry; the pack stage runs it on the prime directory right after the pack"
    ),
    "pip-check": (
        "charmcraft's charm plugin ships the venv's site-packages flat in venv/ (the layout "
        "dispatch's PYTHONPATH=lib:venv reads), and pip-check only reads a venv with lib/; "
        "the content check requires every requirement, and the functional test imports them "
        "with the target's Python"
    ),
    "pydeps": "the charm uses no charm library (lib/charms/): every dependency is in "
    "requirements.txt",
}
# The attribute checkers: what they must find.
ATTRIBUTES = {"language": "python", "framework": "operator"}

# Directories of the project that the charm reads at run time, copied whole into the artifact.
RUNTIME_DIRS = ("templates", "grafana_dashboards", "prometheus_alert_rules", "loki_alert_rules")
# Files charmcraft must generate or keep.
REQUIRED_FILES = (
    "dispatch",
    "manifest.yaml",
    "metadata.yaml",
    "config.yaml",
    "actions.yaml",
    "hooks/install",
    "hooks/start",
    "hooks/upgrade-charm",
    "src/charm.py",
    "src/github_runner_manager/__main__.py",
)
# What must never be in the artifact (top-level names, and names anywhere outside venv/).
FORBIDDEN_TOP = ("tests", "docs", "src-docs", ".tox", ".git", ".ci", "parts", "stage", "prime")
FORBIDDEN_ANYWHERE = (
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".coverage",
    "tox.ini",
)
# Copying the project for the build leaves these out (big, and never part of a build).
COPY_IGNORE = (".git", ".tox", ".venv", "venv", "build", "parts", "stage", "prime")


def log(message: str) -> None:
    """Print a progress line."""
    print(f"pack: {message}", file=sys.stderr, flush=True)


def fail(message: str) -> None:
    """Stop the stage with an error."""
    print(f"pack: FAILED: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def copy_project(project: Path, work: Path) -> Path:
    """Copy the project into `work` for charmcraft (destructive mode builds in place)."""
    target = work / "project"
    if target.exists():
        shutil.rmtree(target)

    def ignore(directory: str, names: list[str]) -> set[str]:
        ignored = {name for name in names if name.endswith(".charm")}
        if Path(directory).resolve() == project:
            ignored |= {name for name in names if name in COPY_IGNORE}
        return ignored

    shutil.copytree(project, target, symlinks=True, ignore=ignore)
    return target


def _app(project_dir: Path) -> Any:
    """Charmcraft's application, its services pointed at the project, its plugins registered."""
    app = charmcraft_main.create_app()
    app.services.update_kwargs("project", project_dir=project_dir)
    craft_parts.plugins.register(app._get_app_plugins())
    return app


def plan_every_platform(project_dir: Path) -> list[craft_platforms.BuildInfo]:
    """Load the project with charmcraft's model and build planner, once per platform.

    Returns:
        The build plan over every platform (every build-on architecture).
    """
    emit.init(
        EmitterMode.QUIET, "charmcraft", "pack stage", log_filepath=project_dir.parent / "plan.log"
    )
    try:
        app = _app(project_dir)
        raw = yaml.safe_load((project_dir / "charmcraft.yaml").read_text(encoding="utf-8"))
        declared = list(raw.get("platforms") or {})
        plan = list(
            app.services.get("build_plan").create_build_plan(
                platforms=None, build_for=None, build_on=None
            )
        )
        planned = [item.platform for item in plan]
        if sorted(planned) != sorted(declared):
            fail(f"charmcraft plans {planned}, charmcraft.yaml declares {declared}")
        for item in plan:
            configured = _app(project_dir)
            service = configured.services.get("project")
            service.configure(platform=item.platform, build_for=None)
            model = service.get()
            charm_part = model.parts.get("charm") or {}
            plugin = craft_parts.plugins.get_plugin_class(charm_part.get("plugin", "charm"))
            plugin.properties_class.unmarshal(charm_part)
            log(
                f"{item.platform}: {type(model).__name__} {model.name!r}, builds on "
                f"{item.build_base.distribution} {item.build_base.series} {item.build_on} "
                f"for {item.build_for}; charm part: {plugin.__name__}"
            )
        return plan
    finally:
        emit.ended_ok()


def host_platform(plan: list[craft_platforms.BuildInfo]) -> str:
    """The first platform whose architecture is this host's."""
    arch = craft_platforms.DebianArchitecture.from_host().value
    for item in plan:
        if str(item.build_for) == arch:
            return item.platform
    fail(f"no platform in charmcraft.yaml builds for this host's architecture {arch}")
    raise AssertionError  # unreachable


def _allow_this_host(self: Any) -> None:
    """Replaces LifecycleService._validate_build_plan: log the base mismatch instead of failing.

    charmcraft refuses to build for an Ubuntu base on another distribution; here the venv is
    built with this host's Python and tested on the same distribution (see the module doc).
    """
    build = self._build_info
    host = craft_platforms.DistroBase.from_linux_distribution(
        __import__("distro").LinuxDistribution()
    )
    log(
        f"building {build.platform} on {host.distribution} {host.series}: charmcraft's "
        "base check is skipped for this test build (Python and libraries are this host's)"
    )


def pack(project_dir: Path, platform_name: str, out: Path) -> Path:
    """Run `charmcraft pack --destructive-mode` in the project copy; return the .charm."""
    craft_application.services.lifecycle.LifecycleService._validate_build_plan = _allow_this_host
    cwd = Path.cwd()
    os.chdir(project_dir)
    argv = sys.argv
    sys.argv = ["charmcraft", "pack", "--destructive-mode", "--platform", platform_name]
    try:
        code = charmcraft_main.main()
    finally:
        sys.argv = argv
        os.chdir(cwd)
    if code:
        fail(f"charmcraft pack exited with {code}")
    charms = sorted(project_dir.glob("*.charm"))
    if len(charms) != 1:
        fail(f"charmcraft pack made {[c.name for c in charms]}, expected one .charm")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.charm"):
        old.unlink()
    target = out / charms[0].name
    shutil.move(charms[0], target)
    return target


def analyse(charm: Path, charmcraft: Path, work: Path) -> None:
    """Run `charmcraft analyse` (the unmodified command) and check every linter's result."""
    completed = subprocess.run(
        [str(charmcraft), "analyse", "--format=json", str(charm)],
        capture_output=True,
        text=True,
        check=False,
        cwd=work,
        timeout=600,
    )
    try:
        results = json.loads(completed.stdout)
    except ValueError:
        fail(f"charmcraft analyse printed no JSON: {completed.stdout} {completed.stderr[-2000:]}")
    problems = []
    for result in results:
        name, outcome, text = result["name"], result["result"], result.get("text", "")
        if result.get("check_type") == "attribute":
            expected = ATTRIBUTES.get(name)
            status = "ok" if outcome == expected else f"expected {expected}"
            log(f"analyse: {name} = {outcome} ({status})")
            if outcome != expected:
                problems.append(f"{name} is {outcome}, expected {expected}")
            continue
        if outcome == "ok":
            log(f"analyse: {name}: ok")
        elif outcome == "nonapplicable" and name in NOT_APPLICABLE:
            log(f"analyse: {name}: not applicable: {NOT_APPLICABLE[name]} (charmcraft: {text})")
        else:
            problems.append(f"{name}: {outcome}: {text}")
    if problems:
        fail("charmcraft analyse: " + "; ".join(problems))
    if completed.returncode:
        fail(f"charmcraft analyse exited with {completed.returncode}: {completed.stderr[-2000:]}")


def lint_prime(project_dir: Path) -> None:
    """Run charmcraft's additional-files linter where it applies: on the build's prime dir."""
    linter = importlib.import_module("charmcraft.linters").AdditionalFiles()
    result = linter.run(project_dir / "prime")
    if result != "ok":
        fail(
            f"charmcraft's additional-files linter on the prime directory: {result}: {linter.text}"
        )
    log(f"analyse: additional-files on the prime directory: ok ({linter.text})")


def requirement_names(requirements: Path) -> list[str]:
    """The distribution names in a requirements file, normalised like wheel directory names."""
    names = []
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name = re.split(r"[\s<>=!~;\[]", line, maxsplit=1)[0]
            names.append(re.sub(r"[-_.]+", "_", name).lower())
    return names


def _missing(paths: set[PurePosixPath], project: Path) -> list[str]:
    """What the charm reads at run time and the artifact lacks."""
    problems = [f"missing {name}" for name in REQUIRED_FILES if PurePosixPath(name) not in paths]
    sources = [path for directory in RUNTIME_DIRS for path in (project / directory).rglob("*")]
    # The package's code and its package data (the runner and image templates).
    sources += [path for path in (project / "src").rglob("*") if path.suffix in (".py", ".j2")]
    for source in sorted(sources):
        relative = PurePosixPath(source.relative_to(project).as_posix())
        if source.is_file() and "__pycache__" not in relative.parts and relative not in paths:
            problems.append(f"missing {relative}")
    return problems


def _venv_distributions(paths: set[PurePosixPath]) -> set[str]:
    """The normalised names of the distributions installed in the artifact's venv/."""
    # The zip lists files only: venv/<name>-<version>.dist-info/METADATA and the like.
    return {
        re.sub(r"[-_.]+", "_", path.parts[1].split("-", 1)[0]).lower()
        for path in paths
        if len(path.parts) >= 3
        and path.parts[0] == "venv"
        and path.parts[1].endswith(".dist-info")
    }


def _forbidden(paths: set[PurePosixPath]) -> list[str]:
    """What the artifact must not ship."""
    problems = []
    for path in paths:
        if path.parts[0] in FORBIDDEN_TOP:
            problems.append(f"ships {path.parts[0]}/")
        elif path.parts[0] != "venv" and any(
            part in FORBIDDEN_ANYWHERE or part.endswith(".charm") for part in path.parts
        ):
            problems.append(f"ships {path}")
    return problems


def check_content(charm: Path, project: Path) -> None:
    """Assert what the artifact must and must not hold."""
    with zipfile.ZipFile(charm) as archive:
        names = archive.namelist()
        manifest = yaml.safe_load(archive.read("manifest.yaml"))
        metadata = yaml.safe_load(archive.read("metadata.yaml"))
        dispatch = archive.read("dispatch").decode()
        dispatch_mode = archive.getinfo("dispatch").external_attr >> 16
    paths = {PurePosixPath(name.rstrip("/")) for name in names}
    problems = _missing(paths, project) + _forbidden(paths)
    if not dispatch_mode & 0o111:
        problems.append("dispatch is not executable")
    if "PYTHONPATH=lib:venv" not in dispatch or "./src/charm.py" not in dispatch:
        problems.append(f"dispatch is not the charm builder's: {dispatch!r}")
    distributions = _venv_distributions(paths)
    required = requirement_names(project / "requirements.txt")
    problems += [f"the venv lacks {name}" for name in required if name not in distributions]
    if metadata.get("name") != "github-runner":
        problems.append(f"metadata.yaml names {metadata.get('name')!r}")
    bases = manifest.get("bases") or []
    if not bases or not manifest.get("charmcraft-version"):
        problems.append(f"manifest.yaml lacks bases or charmcraft-version: {manifest}")
    if problems:
        fail("the artifact is wrong: " + "; ".join(sorted(set(problems))[:40]))
    log(
        f"content: {len(names)} files; dispatch, manifest.yaml (charmcraft "
        f"{manifest['charmcraft-version']}, {bases}), metadata/config/actions, "
        f"{', '.join(RUNTIME_DIRS)}, src/, venv/ with {len(distributions)} distributions (the "
        f"{len(required)} of requirements.txt all there); no tests, docs, .tox or caches"
    )


def _step(step: str, *args: str, capture: bool = False) -> str:
    """Run one charmcraft step in its own process (charmcraft's emitter starts once a process)."""
    completed = subprocess.run(
        [sys.executable, __file__, step, *args],
        stdout=subprocess.PIPE if capture else None,
        text=True,
        check=False,
    )
    if completed.returncode:
        fail(f"the {step} step exited with {completed.returncode}")
    return completed.stdout or ""


def main() -> None:
    """Run the stage, or one of its steps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", nargs="?", default="all", choices=["all", "plan", "pack"])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--platform", default="")
    args = parser.parse_args()
    project = args.project.resolve()
    work, out = args.work.resolve(), args.out.resolve()
    copy = work / "project"
    if args.step == "plan":
        plan = plan_every_platform(copy)
        print(json.dumps({"host-platform": host_platform(plan)}))
        return
    if args.step == "pack":
        pack(copy, args.platform, out)
        return

    for path in (work, out):
        if path == project or project in path.parents:
            fail(f"{path} is inside the project: build output never goes into the tree")
    work.mkdir(parents=True, exist_ok=True)
    log(f"charmcraft {charmcraft.__version__} on {platform.machine()}")
    copy_project(project, work)
    common = ["--project", str(project), "--work", str(work), "--out", str(out)]
    target = json.loads(_step("plan", *common, capture=True).splitlines()[-1])["host-platform"]
    log(f"packing {target} with charmcraft pack --destructive-mode")
    _step("pack", *common, "--platform", target)
    charms = sorted(out.glob("*.charm"))
    if len(charms) != 1:
        fail(f"expected one .charm in {out}, found {[c.name for c in charms]}")
    charm = charms[0]
    log(f"packed {charm} ({charm.stat().st_size // 1024} KiB)")
    lint_prime(copy)
    analyse(charm, Path(sys.executable).parent / "charmcraft", work)
    check_content(charm, project)
    log(f"done: {charm}")


if __name__ == "__main__":
    main()
