"""zooprobe.workflow.dvcrun: dvc-commit and dvc-restore refuse, with the reason, before touching anything."""
from __future__ import annotations

import pytest

from zooprobe.workflow import dvcrun
from zooprobe.workflow.dvcsync import DvcSyncError


def test_commit_refuses_while_dvc_yaml_disagrees_and_runs_no_dvc(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(dvcrun, "sync", lambda root, **kw: ["missing stage 'x'"])
    monkeypatch.setattr(dvcrun, "run_dvc", lambda *args: calls.append(args))
    with pytest.raises(DvcSyncError, match=r"not committing: dvc.yaml disagrees.*dvc-sync --configfile c.yaml` "
                                           r"first:\n  missing stage 'x'"):
        dvcrun.commit_outputs(tmp_path, configfile="c.yaml")
    assert calls == []
    monkeypatch.setattr(dvcrun, "sync", lambda root, **kw: [])
    dvcrun.commit_outputs(tmp_path)
    assert calls == [(tmp_path, "commit", "--force", "--quiet")]


def test_restore_refuses_a_workspace_that_differs_from_dvc_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(dvcrun, "changed_stages", lambda root: {"extract--a--b": [{"changed outs": {}}]})
    monkeypatch.setattr(dvcrun, "restore_command", lambda *a: pytest.fail("must not touch anything"))
    with pytest.raises(DvcSyncError, match=r"run `dvc pull`.*\n  extract--a--b"):
        dvcrun.restore_workspace(tmp_path)


def test_restore_reports_a_failed_touch(tmp_path, monkeypatch):
    monkeypatch.setattr(dvcrun, "changed_stages", lambda root: {})
    monkeypatch.setattr(dvcrun, "restore_command", lambda configfile, cores: ["sh", "-c", "exit 3"])
    with pytest.raises(DvcSyncError, match=r"snakemake --touch failed \(exit 3\)"):
        dvcrun.restore_workspace(tmp_path)


def test_describe_status_lists_at_most_the_limit():
    status = {f"stage{i}": ["changed deps"] for i in range(5)}
    text = dvcrun.describe_status(status, limit=2)
    assert text.splitlines() == ['  stage0: ["changed deps"]', '  stage1: ["changed deps"]', "  ... and 3 more"]
