"""`Waiters`: lets the async request handlers wait for a job that a worker thread finishes.

The worker (kaiga.worker) calls `notify(job_id)` when it finishes a job; a waiting handler wakes
then, or at its next poll of the database, so a job finished by another process (or before a
restart) is seen too.
"""

from __future__ import annotations

import asyncio
import threading

from kaiga.store.jobs import JobQueue, JobView


class Waiters:
    """Lets async request handlers wait for a job that the worker thread finishes."""

    def __init__(self, queue: JobQueue, poll_s: float = 0.5):
        self.queue = queue
        self.poll_s = poll_s
        self._events: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._lock = threading.Lock()

    def notify(self, job_id: str) -> None:
        """Called from the worker thread when `job_id` finished."""
        with self._lock:
            waiting = self._events.pop(job_id, [])
        for loop, event in waiting:
            loop.call_soon_threadsafe(event.set)

    async def wait(self, job_id: str, timeout: float) -> JobView:
        """The job once it is finished; TimeoutError after `timeout` seconds."""
        from starlette.concurrency import run_in_threadpool

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = asyncio.Event()
            with self._lock:
                self._events.setdefault(job_id, []).append((loop, event))
            job = await run_in_threadpool(self.queue.get, job_id)
            if job.is_finished:
                return job
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(job_id)
            try:
                await asyncio.wait_for(event.wait(), min(self.poll_s, remaining))
            except TimeoutError:
                pass
            finally:
                with self._lock:
                    entries = self._events.get(job_id, [])
                    if (loop, event) in entries:
                        entries.remove((loop, event))
                        if not entries:
                            del self._events[job_id]
