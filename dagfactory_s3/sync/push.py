"""Push delivery for the sidecar: long-poll the SQS queue between full reconciles, and say when it fails.

The queue's messages are S3 event notifications (:mod:`dagfactory_s3.serve.events` reads them); this
module is the sidecar's side of it: one long poll at a time (20 s at most, never past the next full
reconcile), run on a thread of its own so SIGTERM stops the sidecar at once rather than after the poll;
the batch's messages deleted once the scoped reconcile they triggered succeeded (those naming a
package that failed come back after the queue's visibility timeout: at least once); and one log line
when the queue stops answering (``queue_unreachable``) and when it answers again (``queue_recovered``),
with ``dagsync_queue_up`` following. While it is down the sidecar polls S3 as it would without a queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection

from dagfactory_s3.errors import StorageError
from dagfactory_s3.serve.events import DROP_REASONS, POLICY, Batch, Queue
from dagfactory_s3.sync.observe import Log, Metrics
from dagfactory_s3.sync.reconcile import CycleReport, Scope

__all__ = ["MAX_WAIT", "Push", "scope_of", "unserved"]

MAX_WAIT = 20  # seconds: SQS's longest long poll, so at most 3 receives a minute at idle
# How long past its wait a receive may take before the queue counts as not answering (botocore's
# own timeouts and retries would otherwise hold the loop for minutes).
ANSWER_SLACK = 15.0


class Push:
    """One sidecar's queue: :meth:`receive` a batch, :meth:`done` with it; ``up`` says whether it answers."""

    def __init__(self, queue: Queue, log: Log, metrics: Metrics) -> None:
        self.queue, self.log, self.metrics = queue, log, metrics
        self.up: bool | None = None  # None until it first answered or failed
        self._waiting: threading.Event | None = None  # the receive the loop waits for, if any

    def interrupt(self) -> None:
        """Stop waiting for the receive in progress (a signal handler calls this after setting stop)."""
        waiting = self._waiting
        if waiting is not None:
            waiting.set()

    def receive(self, deadline: float, stop: threading.Event) -> Batch | None:
        """Long-poll until a message arrives or ``deadline`` (monotonic) is near: the batch (maybe empty),
        or None when the queue failed, ``stop`` was set, or less than a second was left."""
        wait = min(MAX_WAIT, int(deadline - time.monotonic()))
        if wait < 1:
            return None
        done = threading.Event()
        self._waiting = done
        if stop.is_set():  # set before this receive could be interrupted
            return None
        out: list[Batch | Exception] = []
        threading.Thread(target=self._poll, args=(wait, out, done), name="dagsync-queue", daemon=True).start()
        done.wait(wait + ANSWER_SLACK)
        self._waiting = None
        if stop.is_set():
            return None  # a message taken by the abandoned poll comes back after its visibility timeout
        got = out[0] if out else StorageError(f"{self.queue.url}: no answer within {wait + ANSWER_SLACK:g} s")
        if isinstance(got, Exception):
            self._failed(got)
            return None
        self._answered()
        self._count(got)
        return got

    def _poll(self, wait: int, out: list[Batch | Exception], done: threading.Event) -> None:
        try:
            out.append(self.queue.receive(wait))
        except Exception as exc:  # StorageError, or a bug: either way the queue is not delivering
            out.append(exc)
        finally:
            done.set()

    def done(self, batch: Batch, failed: Collection[str] = ()) -> None:
        """Delete the batch's messages, but those naming one of ``failed`` (redelivered: at least once)."""
        if not batch.receipts:
            return
        try:
            self.queue.delete(batch, failed=failed)
        except StorageError as exc:  # they come back and cost one more reconcile of their packages
            self._failed(exc)

    def _count(self, batch: Batch) -> None:
        if not batch.receipts:
            return
        dropped = sum(batch.dropped.values())
        self.metrics.queue_messages.labels("acted").inc(batch.acted)
        self.metrics.queue_messages.labels("ignored").inc(batch.messages - batch.acted - dropped)
        for reason in DROP_REASONS:
            if batch.dropped[reason]:
                self.metrics.queue_messages.labels(f"dropped_{reason}").inc(batch.dropped[reason])
        self.log(
            "queue",
            messages=batch.messages,
            packages=sorted(batch.packages) or None,
            policy=batch.policy or None,
            dropped=dict(batch.dropped) or None,
        )

    def _answered(self) -> None:
        if self.up is False:
            self.log("queue_recovered", queue=self.queue.url)
        self.up = True
        self.metrics.queue_up.set(1)

    def _failed(self, exc: Exception) -> None:
        if self.up is not False:
            self.log(
                "queue_unreachable",
                level="warning",
                queue=self.queue.url,
                error=str(exc) if isinstance(exc, StorageError) else f"{type(exc).__name__}: {exc}",
                note="polling S3 every interval until the queue answers again (retried each cycle)",
            )
        self.up = False
        self.metrics.queue_up.set(0)


def scope_of(batch: Batch) -> Scope:
    """The scoped cycle a batch asks for: the packages it named, and the policy if it named it."""
    return Scope(frozenset(batch.packages), batch.policy, why="queue")


def unserved(batch: Batch, report: CycleReport | None) -> set[str]:
    """What the batch named that its scoped cycle did not serve (all of it when the cycle was not
    complete or raised): the messages naming these stay in the queue for redelivery."""
    named = set(batch.packages) | ({POLICY} if batch.policy else set())
    if report is None or not report.complete:
        return named
    return named & set(report.failed)
