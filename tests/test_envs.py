"""Per-rule conda environments: every rule names one, each parses, and versions are pinned."""

import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO

RULE_FILES = sorted((REPO / "rules").glob("*.smk"))


def _rules_and_envs():
    """(rule name, env path) for every rule with a job to run, read from the rule files."""
    found = []
    for path in RULE_FILES:
        text = path.read_text()
        for block in re.split(r"^rule ", text, flags=re.M)[1:]:
            name = block.split(":", 1)[0].strip()
            runs = re.search(r"^\s+(script|shell|run):", block, flags=re.M)
            env = re.search(r"^\s+conda:\s*\n\s+\"([^\"]+)\"", block, flags=re.M)
            found.append((path, name, bool(runs), env.group(1) if env else None))
    return found


@pytest.mark.parametrize(
    ("rule_file", "rule", "runs", "env"),
    _rules_and_envs(),
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_every_rule_that_runs_a_job_names_an_existing_env(rule_file, rule, runs, env):
    if not runs:
        pytest.skip(f"{rule} only gathers targets")
    assert env is not None, f"rule {rule} in {rule_file.name} has no conda: directive"
    assert (rule_file.parent / env).resolve().is_file(), f"{rule}: {env} does not exist"


@pytest.mark.parametrize("env_file", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_files_parse_use_conda_forge_and_pin_every_version(env_file):
    env = yaml.safe_load(env_file.read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    for dep in env["dependencies"]:
        if isinstance(dep, dict):  # a pip: section
            for pip_dep in dep.get("pip", []):
                assert "==" in pip_dep or pip_dep.startswith(("-e", ".")), pip_dep
            continue
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+=[0-9][0-9A-Za-z.*]*", dep), f"unpinned: {dep}"


def test_each_kind_of_step_has_its_env():
    names = {p.stem for p in (REPO / "envs").glob("*.yaml")}
    assert {"data", "tensorflow", "report"} <= names


# Import names whose conda package is called something else.
CONDA_NAME = {"PIL": "pillow", "skimage": "scikit-image", "yaml": "pyyaml"}


def _third_party_imports(module_path: Path) -> set[str]:
    """Top-level packages a zooflow module imports, anywhere in the file, stdlib excluded."""
    import ast
    import sys

    found = set()
    for node in ast.walk(ast.parse(module_path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in ("zooflow", "__future__"):
                found.add(CONDA_NAME.get(top, top))
    return found


def test_each_rules_env_provides_what_its_library_modules_import():
    """Under --sdm conda a job sees only its env: every third-party import of the rule's script
    and of every zooflow module it runs must be in that rule's env."""
    from zooflow.dependencies import import_closure

    checked = 0
    for path in RULE_FILES:
        for block in re.split(r"^rule ", path.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0].strip()
            env = re.search(r"^\s+conda:\s*\n\s+\"([^\"]+)\"", block, flags=re.M)
            script = re.search(r'script:\s*\n\s+"\.\./scripts/([a-z_0-9]+)\.py"', block)
            if not env or not script:
                continue
            spec = yaml.safe_load((path.parent / env.group(1)).read_text())
            packages = {str(d).split("=")[0] for d in spec["dependencies"] if isinstance(d, str)}
            script_file = REPO / "scripts" / f"{script.group(1)}.py"
            for module in [script_file, *import_closure(script_file, REPO / "zooflow")]:
                needed = _third_party_imports(module)
                missing = needed - packages
                assert not missing, f"rule {name}: {env.group(1)} lacks {missing} for {module.name}"
                checked += 1
    assert checked > 20


# Conda package -> the distribution the test environment installs it as (first one found).
PIP_NAMES = {"tensorflow": ("tensorflow-cpu", "tensorflow"), "pyyaml": ("PyYAML",)}


def _installed_version(package: str) -> str:
    import importlib.metadata
    import sys

    if package == "python":
        return f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    for name in PIP_NAMES.get(package, (package,)):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise AssertionError(f"{package} is in a conda env but not installed where the tests run")


@pytest.mark.parametrize("env_file", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_files_pin_the_release_series_the_tests_run_with(env_file):
    """A job run with --sdm conda must get the TensorFlow, Keras, pandas... the tests passed with."""
    env = yaml.safe_load(env_file.read_text())
    for dep in env["dependencies"]:
        if not isinstance(dep, str):
            continue
        package, pinned = dep.split("=")
        installed = _installed_version(package)
        assert pinned.split(".")[:2] == installed.split(".")[:2], (
            f"{env_file.name} pins {package}={pinned} but the tests run {installed}: "
            f"pin {package}={installed}"
        )


def test_rule_resources_grow_with_each_retry(tmp_path):
    """On a retry (SLURM profile: retries 2) a job asks for more memory and time than before."""
    from conftest import copy_workflow, parsed_workflow

    checked = []
    with parsed_workflow(copy_workflow(tmp_path / "wf")) as workflow:
        for rule in workflow.rules:
            for name in ("mem_mb", "runtime"):
                if name not in rule.resources:
                    continue
                first, second = (
                    rule.resources[name].evaluate({}, attempt=attempt).value for attempt in (1, 2)
                )
                assert second == 2 * first, f"rule {rule.name}: {name} {first} -> {second}"
                checked.append((rule.name, name))
    assert {rule for rule, _ in checked} >= {"train", "predict", "ingest", "acquire"}
