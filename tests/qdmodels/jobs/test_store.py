"""Job files: atomic writes, done/failed/pending, corrupt files, merging."""

from __future__ import annotations

import pytest

from qdmodels.jobs import JobStore, expand, merge_records, sweep_status
from qdstats.records import FailedMeasurement, Measurement, ModelRef, read_records

REF = ModelRef(model_id="tiny:gpt2", source="config", sha256="a" * 64)


def _rec(v: float = 1.0, ref: ModelRef = REF) -> Measurement:
    return Measurement(quantity="eval.bits_per_byte", value=v, model=ref, language="eng_Latn", item_id="x", routine="test")


def _fail() -> FailedMeasurement:
    return FailedMeasurement.from_exception(ValueError("boom"), routine="test")


def test_states(tmp_path, spec):
    jobs = expand(spec)
    store = JobStore(tmp_path)
    store.write_done(jobs[0].id, [_rec()])
    store.write_failed(jobs[1].id, [_fail()])
    st = sweep_status(spec, tmp_path)
    assert st.done == [jobs[0].id] and st.failed == [jobs[1].id]
    assert st.pending == [j.id for j in jobs[2:]]
    assert st.counts() == {"done": 1, "failed": 1, "pending": len(jobs) - 2}
    assert not st.complete
    # success after a failure removes the failure file
    store.write_done(jobs[1].id, [_rec(2.0)])
    assert store.state(jobs[1].id) == "done" and not store.failed_path(jobs[1].id).exists()


def test_corrupt_job_file_is_pending(tmp_path, spec):
    """A torn file (impossible with the atomic rename, but disks fail) is recomputed, not trusted."""
    j = expand(spec)[0]
    store = JobStore(tmp_path)
    store.write_done(j.id, [_rec()])
    text = store.path(j.id).read_text()
    store.path(j.id).write_text(text[: len(text) // 2])
    assert store.state(j.id) == "pending"


def test_done_file_rejects_failures(tmp_path):
    with pytest.raises(ValueError, match="FailedMeasurement"):
        JobStore(tmp_path).write_done("x" * 64, [_rec(), _fail()])


def test_clean_temp_files(tmp_path):
    store = JobStore(tmp_path)
    store.jobs_dir.mkdir(parents=True)
    (store.jobs_dir / ".abc.jsonl.123.tmp").write_text("partial")
    assert store.clean_temp_files() == 1
    assert not list(store.jobs_dir.iterdir())


def test_merge_in_job_order_and_ref_check(tmp_path, spec):
    jobs = expand(spec)
    store = JobStore(tmp_path)
    store.write_done(jobs[3].id, [_rec(3.0)])
    store.write_done(jobs[1].id, [_rec(1.0)])
    store.write_failed(jobs[2].id, [_fail()])
    recs = merge_records(spec, tmp_path)
    assert [r.value for r in recs] == [1.0, 3.0]
    assert [r.value for r in read_records(tmp_path / "records.jsonl")] == [1.0, 3.0]
    with_f = merge_records(spec, tmp_path, dest=tmp_path / "all.jsonl", include_failed=True)
    assert len(with_f) == 3 and isinstance(with_f[1], FailedMeasurement)
    other = ModelRef(model_id="tiny:gpt2", source="config", sha256="b" * 64)
    store.write_done(jobs[4].id, [_rec(4.0, other)])
    with pytest.raises(ValueError, match="different weight hashes"):
        merge_records(spec, tmp_path)
