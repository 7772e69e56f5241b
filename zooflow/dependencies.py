"""Which zooflow modules a workflow script runs: its import closure, read from the code itself.

Snakemake reruns a job when its script changes but not when a module the script imports does;
every rule therefore lists the modules as inputs. Reading them from the imports (with ``ast``)
keeps the list from drifting as the code changes.

Modules are named by their dotted path below ``zooflow`` (``"bald"``, ``"mock.render"``), and
subpackages are followed: importing ``zooflow.mock`` runs ``zooflow/mock/__init__.py`` and
whatever it imports, absolute (``from zooflow.mock.render import ...``) or relative
(``from .render import ...``), and importing ``zooflow.mock.render`` runs the package's
``__init__.py`` first.
"""

from __future__ import annotations

import ast
from pathlib import Path

# Modules that only shape a job's log: editing them reruns nothing.
LOG_ONLY_MODULES = frozenset({"runlog"})


def module_file(package_dir: str | Path, name: str) -> Path:
    """The file of zooflow module ``name`` (dotted): a package's ``__init__.py`` or ``name.py``."""
    path = Path(package_dir).joinpath(*name.split("."))
    package = path / "__init__.py"
    return package if package.exists() else path.with_name(f"{path.name}.py")


def _is_module(package_dir: str | Path, name: str) -> bool:
    return module_file(package_dir, name).is_file()


def _imported_from(node: ast.ImportFrom, package: str | None) -> str | None:
    """The dotted name below zooflow that ``from X import ...`` reads from ("" for zooflow
    itself), or None when X is not part of zooflow. ``package`` is the importing file's own
    package below zooflow, for relative imports; None for a file outside zooflow."""
    if node.level == 0:
        parts = (node.module or "").split(".")
        return ".".join(parts[1:]) if parts[0] == "zooflow" else None
    if package is None:
        return None
    base = package.split(".") if package else []
    up = node.level - 1
    if up > len(base):
        return None  # above zooflow
    return ".".join(base[: len(base) - up] + (node.module.split(".") if node.module else []))


def zooflow_imports(
    path: str | Path, package_dir: str | Path, package: str | None = None
) -> set[str]:
    """Dotted names of the zooflow modules a Python file imports, at any depth of its code.

    ``from zooflow.mock import render, simulate_survey`` names ``mock`` and the submodule
    ``mock.render`` (a function or class is no module); every package above an imported module
    is named too, since Python runs its ``__init__.py`` first. ``package`` is the file's own
    package below zooflow (``""`` for a module of zooflow itself), so that relative imports
    resolve; leave it None for a file outside zooflow, such as a workflow script.
    """
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _imported_from(node, package)
            if base is None:
                continue
            if base:
                found.add(base)
            for alias in node.names:
                name = f"{base}.{alias.name}" if base else alias.name
                if _is_module(package_dir, name):
                    found.add(name)
        elif isinstance(node, ast.Import):
            found |= {
                a.name.removeprefix("zooflow.") for a in node.names if a.name.startswith("zooflow.")
            }
    parents = {name.rsplit(".", i)[0] for name in found for i in range(1, name.count(".") + 1)}
    return (found | parents) - LOG_ONLY_MODULES


def import_closure(script: str | Path, package_dir: str | Path) -> list[Path]:
    """Every zooflow module ``script`` imports, directly or through other zooflow modules."""
    todo = zooflow_imports(script, package_dir)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            path = module_file(package_dir, name)
            # A package's __init__ resolves relative imports against the package itself.
            package = name if path.name == "__init__.py" else name.rpartition(".")[0]
            todo |= zooflow_imports(path, package_dir, package)
    return sorted(module_file(package_dir, name) for name in seen)
