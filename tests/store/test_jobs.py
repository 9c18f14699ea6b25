"""The queue's order (priority, fairness across users, FIFO), idempotency, cancellation, recovery.

Each test runs on SQLite and on PostgreSQL (`database_url`, tests/conftest.py)."""

import pytest

from kaiga.store.db import open_database
from kaiga.store.jobs import IdempotencyConflict, JobQueue, QueueFull, StaleClaim


@pytest.fixture
def queue(database_url):
    db = open_database(database_url)
    yield JobQueue(db, max_queued=100, max_attempts=2)
    db.engine.dispose()


def _submit(queue, user, prompt, priority=0, key=None):
    return queue.submit({"prompt": prompt, "seed": 1}, user=user, priority=priority, idempotency_key=key)[0]


def _drain(queue):
    order = []
    while (job := queue.claim()) is not None:
        order.append(job.request["prompt"])
        queue.finish(job.id, job.attempts, image_ids=[])
    return order


def test_priority_then_round_robin_across_users_then_fifo(queue):
    for i in range(3):
        _submit(queue, "ann", f"ann{i}")
    _submit(queue, "bob", "bob0")
    _submit(queue, "bob", "bob1")
    _submit(queue, "cat", "cat0")
    _submit(queue, "bob", "urgent", priority=5)
    assert _drain(queue) == ["urgent", "ann0", "cat0", "bob0", "ann1", "bob1", "ann2"]


def test_idempotency_key_returns_the_same_job_and_refuses_another_request(queue):
    a, created_a = queue.submit({"prompt": "x"}, idempotency_key="k1")
    b, created_b = queue.submit({"prompt": "x"}, idempotency_key="k1")
    assert (created_a, created_b, a.id) == (True, False, b.id)
    with pytest.raises(IdempotencyConflict):
        queue.submit({"prompt": "y"}, idempotency_key="k1")
    assert queue.depth() == 1


def test_full_queue_says_when_to_retry(queue):
    queue.max_queued = 2
    _submit(queue, "a", "1")
    _submit(queue, "a", "2")
    with pytest.raises(QueueFull) as e:
        _submit(queue, "a", "3")
    assert e.value.retry_after >= 1


def test_cancel_pending_and_running(queue):
    pending = _submit(queue, "a", "1")
    running = _submit(queue, "a", "2")
    assert queue.cancel(pending.id).status == "cancelled"
    claimed = queue.claim()
    assert claimed.id == running.id
    assert queue.cancel(running.id).status == "running"  # the worker stops it between steps
    assert queue.set_progress(running.id, 0.5) is True
    assert queue.mark_cancelled(running.id, claimed.attempts).status == "cancelled"


def test_recover_requeues_interrupted_jobs_and_fails_them_after_max_attempts(queue):
    job = _submit(queue, "a", "1")
    for attempt in (1, 2):
        claimed = queue.claim()
        assert (claimed.id, claimed.attempts) == (job.id, attempt)
        # ... the process dies here; on the next start:
        requeued, failed = queue.recover()
        assert (requeued, failed) == ((1, 0) if attempt == 1 else (0, 1))
    final = queue.get(job.id)
    assert final.status == "failed" and "interrupted 2 times" in final.error


def test_a_stale_claim_cannot_finish_a_job_twice(queue):
    job = _submit(queue, "a", "1")
    first = queue.claim()
    queue.recover()  # as after a restart: the job is pending again...
    second = queue.claim()  # ...and a new attempt runs it
    queue.finish(job.id, second.attempts, image_ids=[7])
    with pytest.raises(StaleClaim):
        queue.finish(job.id, first.attempts, image_ids=[8])
    assert queue.get(job.id).result_image_ids == [7]


def test_a_models_worker_claims_only_that_models_jobs(queue):
    a = queue.submit({"prompt": "for a", "seed": 1}, model="model-a")[0]
    b = queue.submit({"prompt": "for b", "seed": 1}, model="model-b", priority=5)[0]
    old = queue.submit({"prompt": "queued before jobs named a model", "seed": 1})[0]
    assert queue.claim(("model-a",)).id == a.id  # b has the higher priority but is not model-a's
    assert queue.claim(("model-a",)) is None
    assert queue.claim(("model-c", "")).id == old.id  # the default model's worker also takes ""
    assert queue.claim(None).id == b.id


def test_a_batch_is_claimed_in_queue_order_with_its_first_jobs_start(queue):
    first_view = _submit(queue, "ann", "a cat")
    alike = [_submit(queue, user, "a cat") for user in ("bob", "cat")]
    other = _submit(queue, "dan", "a dog")  # other settings: not taken
    urgent = _submit(queue, "eve", "a cat", priority=5)  # another priority: claimed first, and alone
    assert queue.claim().id == urgent.id
    first = queue.claim()
    assert first.id == first_view.id
    batch = queue.claim_alike(first, lambda request: request["prompt"] == "a cat")
    assert [j.id for j in batch] == [j.id for j in alike]
    assert {j.status for j in batch} == {"running"} and {j.started for j in batch} == {first.started}
    assert queue.get(other.id).status == "pending"
