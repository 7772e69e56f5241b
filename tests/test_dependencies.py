"""The zooflow modules a workflow script runs, read from the code: what every rule tracks."""

from pathlib import Path

from zooflow.dependencies import import_closure

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


def test_the_real_scripts_track_the_modules_they_used_to_miss():
    def names(script):
        return {p.stem for p in import_closure(REPO / "scripts" / f"{script}.py", REPO / "zooflow")}

    assert {"training", "models", "losses", "data"} <= names("train")  # warm start loads
    # One data module, no cycle: training and prediction share zooflow.data and zooflow.models
    # instead of importing each other.
    assert "predict" not in names("train") and "training" not in names("predict")
    assert "splits" in names("shards")
    assert "acquisition" not in names("train") and "runlog" not in names("train")
