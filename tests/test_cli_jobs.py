"""`tenantrag ingest --async` and `tenantrag jobs list|status|cancel`, on a real data folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tenantrag import settings as settings_module
from tenantrag.backends.embedding.onnx import OnnxEmbedder
from tenantrag.backends.store import build_store
from tenantrag.cli import main
from tenantrag.metering import CostRecorder
from tenantrag.services import build_corpus, job_worker
from tenantrag.settings import get_settings

SECRET = "cli-jobs-secret-0123456789-abcdefghijklmnop"


@pytest.fixture
def cli(tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A runner whose environment points at a fresh data folder, with the tenant acme."""
    monkeypatch.setenv("TENANTRAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TENANTRAG_MODEL_DIR", str(model_dir.parent))
    monkeypatch.setenv("TENANTRAG_JWT_SECRET", SECRET)
    monkeypatch.delenv("TENANTRAG_REDIS_URL", raising=False)
    monkeypatch.delenv("TENANTRAG_DATABASE_URL", raising=False)
    settings_module.get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(main, ["tenant", "create", "acme"]).exit_code == 0
    yield runner
    settings_module.get_settings.cache_clear()


def corpus(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "corpus.jsonl"
    rows = [{"_id": f"d{i}", "title": f"T{i}", "text": f"Body of note {i}."} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_ingest_async_queues_and_jobs_commands_show_and_cancel(
    cli: CliRunner, tmp_path: Path
) -> None:
    """--no-follow prints the job id; list and status show it queued; cancel stops it."""
    r = cli.invoke(
        main, ["ingest", "--async", "--no-follow", "--tenant", "acme", str(corpus(tmp_path, 3))]
    )
    assert r.exit_code == 0, r.output
    job_id = r.output.split()[1]
    assert f"job {job_id} queued: 3 documents into acme" in r.output
    listed = cli.invoke(main, ["jobs", "list", "--tenant", "acme"])
    assert f"{job_id}  queued     done 0/3  failed 0" in listed.output
    status = cli.invoke(main, ["jobs", "status", "--tenant", "acme", job_id])
    assert status.exit_code == 0 and "queued" in status.output
    cancelled = cli.invoke(main, ["jobs", "cancel", "--tenant", "acme", job_id])
    assert cancelled.exit_code == 0 and f"{job_id}  cancelled" in cancelled.output
    assert cli.invoke(main, ["jobs", "status", "--tenant", "acme", "0" * 24]).exit_code != 0
    assert cli.invoke(main, ["jobs", "cancel", "--tenant", "acme", "0" * 24]).exit_code != 0
    assert cli.invoke(main, ["jobs", "list", "--tenant", "nobody"]).exit_code != 0


def test_ingest_async_follows_the_job_to_its_end(
    cli: CliRunner, tmp_path: Path, model_dir: Path
) -> None:
    """With a worker running, `ingest --async` follows the job with a bar until it succeeds."""
    settings = get_settings()
    store = build_store(settings, audit_scrub=None)
    store.open()
    corpus_ = build_corpus(settings, store, OnnxEmbedder(model_dir), follow=False)
    costs = CostRecorder(store)
    worker = job_worker(settings, store, corpus_.ingestor, costs, priority=None)
    worker.start()
    try:
        r = cli.invoke(main, ["ingest", "--async", "--tenant", "acme", str(corpus(tmp_path, 4))])
    finally:
        worker.stop()
        costs.flush()
        store.close()
    assert r.exit_code == 0, r.output
    assert "succeeded  done 4/4  failed 0" in r.output
    assert not worker.running
