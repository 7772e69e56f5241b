"""Outputs appear whole or not at all."""

from pathlib import Path

import pandas as pd
import pytest

from zooflow.atomic import atomic_path


def test_a_file_appears_only_when_writing_finished(tmp_path: Path):
    target = tmp_path / "sub" / "table.csv.gz"
    with atomic_path(target) as temporary:
        assert temporary.parent == target.parent and temporary.name.endswith(".csv.gz")
        pd.DataFrame({"a": [1, 2]}).to_csv(temporary, index=False)  # compression from the name
        assert not target.exists()
    assert pd.read_csv(target)["a"].tolist() == [1, 2]
    assert [p.name for p in target.parent.iterdir()] == ["table.csv.gz"]


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_text("earlier run")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "earlier run"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
