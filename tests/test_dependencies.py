"""The zooflow modules a workflow script runs, read from the code: what every rule tracks."""

import graphlib
from pathlib import Path

from zooflow.dependencies import import_closure, zooflow_imports

REPO = Path(__file__).resolve().parents[1]


def test_the_closure_follows_imports_at_any_depth_and_skips_log_only_modules(tmp_path):
    package = tmp_path / "zooflow"
    (package / "trees").mkdir(parents=True)
    (package / "trees" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from zooflow.b import g\n    return g\n")
    (package / "b.py").write_text("import zooflow.c\nfrom zooflow import trees\n")
    (package / "c.py").write_text("import numpy\n")
    (package / "runlog.py").write_text("")
    (package / "unused.py").write_text("")
    script = tmp_path / "step.py"
    script.write_text("from zooflow.runlog import log_to\n\nimport zooflow.a\n")
    closure = import_closure(script, package)
    assert closure == sorted(
        [package / "a.py", package / "b.py", package / "c.py", package / "trees" / "__init__.py"]
    )


def test_the_closure_follows_subpackages_absolute_and_relative_imports(tmp_path):
    package = tmp_path / "zooflow"
    (package / "pkg").mkdir(parents=True)
    # The package's __init__ re-exports from its submodules, absolutely and relatively.
    (package / "pkg" / "__init__.py").write_text(
        "from zooflow.pkg.one import f\nfrom .two import g\nfrom . import three\n"
    )
    (package / "pkg" / "one.py").write_text("from ..base import h\n")
    (package / "pkg" / "two.py").write_text("from zooflow.pkg.deep.four import k\n")
    (package / "pkg" / "three.py").write_text("")
    (package / "pkg" / "deep").mkdir()
    (package / "pkg" / "deep" / "__init__.py").write_text("")
    (package / "pkg" / "deep" / "four.py").write_text("from ...base import h\n")
    (package / "pkg" / "unused.py").write_text("")
    (package / "base.py").write_text("")
    (package / "other.py").write_text("")
    modules = [
        package / "base.py",
        package / "pkg" / "__init__.py",
        package / "pkg" / "deep" / "__init__.py",
        package / "pkg" / "deep" / "four.py",
        package / "pkg" / "one.py",
        package / "pkg" / "three.py",
        package / "pkg" / "two.py",
    ]
    # A package, its submodule (which runs the package's __init__ first), or names from it
    # (functions are not modules) all lead to the same files.
    for line in (
        "import zooflow.pkg\n",
        "from zooflow.pkg import f, g\n",
        "from zooflow.pkg.three import nothing\n",
        "from zooflow import pkg\n",
    ):
        script = tmp_path / "step.py"
        script.write_text(line)
        assert import_closure(script, package) == sorted(modules), line


def test_the_real_scripts_track_the_modules_they_used_to_miss():
    def names(script):
        return {p.stem for p in import_closure(REPO / "scripts" / f"{script}.py", REPO / "zooflow")}

    assert {"training", "models", "losses", "data"} <= names("train")  # warm start loads
    # One data module, no cycle: training and prediction share zooflow.data and zooflow.models
    # instead of importing each other.
    assert "predict" not in names("train") and "training" not in names("predict")
    assert "splits" in names("shards")
    assert "acquisition" not in names("train") and "runlog" not in names("train")


def test_importing_the_mock_package_tracks_every_module_of_it():
    closure = import_closure(REPO / "scripts" / "simulate.py", REPO / "zooflow")
    mock = sorted((REPO / "zooflow" / "mock").glob("*.py"))
    assert len(mock) > 1 and set(mock) <= set(closure)


def test_the_library_has_no_import_cycle_and_no_module_over_600_lines():
    """Each module has one job (#20): no two modules import each other, directly or around a
    loop, and none grows past 600 lines. A package's own submodules naming it (Python runs its
    __init__ first) is not a loop."""
    package = REPO / "zooflow"
    modules = {
        ".".join(path.relative_to(package).with_suffix("").parts).removesuffix(".__init__"): path
        for path in package.rglob("*.py")
    }
    graph = {}
    for name, path in modules.items():
        own_package = name.rsplit(".", 1)[0] if "." in name else ""
        if path.name == "__init__.py":
            own_package = name
        parents = {name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)}
        graph[name] = zooflow_imports(path, package, own_package) - parents - {name}
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a loop
    assert {"predict", "training", "data", "information", "bald"} <= set(order)
    long = {
        name: n for name, path in modules.items() if (n := len(path.read_text().splitlines())) > 600
    }
    assert not long, f"modules over 600 lines: {long}"
