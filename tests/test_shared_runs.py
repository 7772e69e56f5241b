"""The suite's shared runs are built once per session, also when pytest-xdist splits it."""

from types import SimpleNamespace

import pytest

from conftest import built_once


def _factory(base):
    return SimpleNamespace(getbasetemp=lambda: base)


def test_a_shared_folder_is_built_once_for_every_worker(tmp_path, monkeypatch):
    builds = []

    def build(folder):
        builds.append(folder)
        folder.mkdir()
        (folder / "made").write_text("once")

    # Two workers of one session: their base folders sit side by side in the session's.
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    first = built_once(_factory(tmp_path / "popen-gw0"), "run", build)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    second = built_once(_factory(tmp_path / "popen-gw1"), "run", build)
    assert first == second == tmp_path / "run" and builds == [tmp_path / "run"]
    # Without xdist the session's own base folder holds it.
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert built_once(_factory(tmp_path), "run", build) == tmp_path / "run"
    assert len(builds) == 1


def test_a_failed_build_fails_the_next_asker_with_its_reason_without_building_again(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    calls = []

    def broken(folder):
        calls.append(folder)
        raise RuntimeError("snakemake data failed (1)")

    with pytest.raises(RuntimeError, match="data failed"):
        built_once(_factory(tmp_path), "run", broken)
    with pytest.raises(pytest.fail.Exception, match=r"RuntimeError: snakemake data failed \(1\)"):
        built_once(_factory(tmp_path), "run", broken)
    assert len(calls) == 1
