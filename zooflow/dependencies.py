"""Which zooflow modules a workflow script runs: its import closure, read from the code itself.

Snakemake reruns a job when its script changes but not when a module the script imports does;
every rule therefore lists the modules as inputs. Reading them from the imports (with ``ast``)
keeps the list from drifting as the code changes.
"""

from __future__ import annotations

import ast
from pathlib import Path

# Modules that only shape a job's log: editing them reruns nothing.
LOG_ONLY_MODULES = frozenset({"runlog"})


def zooflow_imports(path: str | Path) -> set[str]:
    """Names of the zooflow modules a Python file imports, at any depth of its code."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] == "zooflow":
                found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("zooflow.")}
    return found - LOG_ONLY_MODULES


def module_file(package_dir: str | Path, name: str) -> Path:
    """The file of zooflow module ``name``: a package's ``__init__.py`` or ``name.py``."""
    package = Path(package_dir) / name / "__init__.py"
    return package if package.exists() else Path(package_dir) / f"{name}.py"


def import_closure(script: str | Path, package_dir: str | Path) -> list[Path]:
    """Every zooflow module ``script`` imports, directly or through other zooflow modules."""
    todo = zooflow_imports(script)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo |= zooflow_imports(module_file(package_dir, name))
    return sorted(module_file(package_dir, name) for name in seen)
