"""Push delivery: which packages of an environment changed, from S3 event notifications in SQS.

The bucket sends ``s3:ObjectCreated:*`` / ``s3:ObjectRemoved:*`` events under ``<env>/`` to an SNS
topic (or straight to a queue); each consumer (a sidecar, a dag-processor's bundle) reads its own
SQS queue. Only commit points matter to a consumer, so an event names:

* a **package** when its key is ``<env>/<package>/metadata.json`` (the release record: publish,
  promote, rollback and retire all write or delete it), or, where unreleased packages are mirrored,
  any key under ``<env>/<package>/dags/``;
* the **policy** when its key is ``<env>/_platform/policy.json`` (the policy pointer).

Every other event is *ignored* (a content object or a history record is written before its record,
so one publish of 100 DAGs coalesces into the one event of its record) and every message that is
not an S3 event of this bucket and environment is *dropped*, counted by reason, never an error:
``foreign`` (another bucket or prefix), ``malformed`` (not JSON, not an S3 event, a key that is
not a name), ``test`` (the ``s3:TestEvent`` S3 sends when the notification is set up).

At least once: a consumer deletes a batch's messages (:meth:`Queue.delete`) only after the
reconcile they triggered succeeded; a message left undeleted comes back after the queue's
visibility timeout, and a message seen twice only reconciles a package twice. Events are hints:
the consumer always reads the record itself, so duplicates, reordering and lost events cost at
most a later reconcile (the periodic full one is the backstop).

No Airflow, no publisher: the sidecar and the bundle share this module.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from dagfactory_s3 import naming, s3
from dagfactory_s3.errors import StorageError
from dagfactory_s3.serve.policy import PLATFORM_DIR, POINTER

__all__ = ["DROP_REASONS", "POLICY", "Batch", "Queue", "parse"]

DROP_REASONS = ("foreign", "malformed", "test")
POLICY = PLATFORM_DIR  # what a message names for the policy pointer (never a package name)
MAX_BODY_BYTES = 256 * 1024  # SQS's own limit on a message


@dataclass
class Batch:
    """What one or more received messages say, and how to delete them once acted on."""

    packages: set[str] = field(default_factory=set)
    policy: bool = False
    receipts: list[str] = field(default_factory=list)
    ignored: int = 0  # S3 events of this environment that are not commit points
    dropped: Counter[str] = field(default_factory=Counter)  # reason -> messages
    # receipt -> what its message named (packages, and POLICY): a consumer keeps the messages of what
    # it failed to serve and deletes the rest (:meth:`settled`)
    names: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def messages(self) -> int:
        return len(self.receipts)

    @property
    def relevant(self) -> bool:
        return bool(self.packages) or self.policy

    @property
    def acted(self) -> int:
        """Messages that named a package or the policy."""
        return sum(1 for r in self.receipts if self.names.get(r))

    def merge(self, other: Batch) -> None:
        self.packages |= other.packages
        self.policy = self.policy or other.policy
        self.receipts += other.receipts
        self.ignored += other.ignored
        self.dropped.update(other.dropped)
        self.names.update(other.names)

    def settled(self, failed: Collection[str] = ()) -> list[str]:
        """The receipts to delete: every message but those naming one of ``failed`` (package names, or
        POLICY), which come back after the visibility timeout. Dropped and ignored ones always go."""
        keep = frozenset(failed)
        return [r for r in self.receipts if not self.names.get(r, frozenset()) & keep]


def parse(body: str, bucket: str, environment: str, *, unreleased: bool = False) -> Batch:
    """One message body -> what it names (no receipt). Raw S3 events and SNS envelopes alike."""
    out = Batch()
    if len(body) > MAX_BODY_BYTES:
        out.dropped["malformed"] += 1
        return out
    try:
        doc = json.loads(body)
        if (
            isinstance(doc, dict)
            and doc.get("Type") == "Notification"
            and isinstance(doc.get("Message"), str)
        ):
            doc = json.loads(doc["Message"])  # an SNS envelope (no raw message delivery)
    except ValueError:
        out.dropped["malformed"] += 1
        return out
    if not isinstance(doc, dict):
        out.dropped["malformed"] += 1
        return out
    if doc.get("Event") == "s3:TestEvent":
        out.dropped["test"] += 1
        return out
    records = doc.get("Records")
    if not isinstance(records, list) or not records:
        out.dropped["malformed"] += 1
        return out
    reasons: Counter[str] = Counter()
    for record in records:
        what = _record(record, bucket, environment, unreleased)
        if what is None:
            out.ignored += 1
        elif what == "policy":
            out.policy = True
        elif what.startswith("drop:"):
            reasons[what[5:]] += 1
        else:
            out.packages.add(what)
    if reasons and not out.relevant and not out.ignored:
        out.dropped[reasons.most_common(1)[0][0]] += 1  # a message counts once, by its main reason
    return out


def _record(record: Any, bucket: str, environment: str, unreleased: bool) -> str | None:
    """``"policy"``, a package name, None (ignored) or ``"drop:<reason>"``."""
    try:
        source, name = record["eventSource"], record["eventName"]
        notice = record["s3"]
        their_bucket, raw_key = notice["bucket"]["name"], notice["object"]["key"]
    except (KeyError, TypeError):
        return "drop:malformed"
    if source != "aws:s3" or not isinstance(name, str) or not isinstance(raw_key, str):
        return "drop:malformed"
    if their_bucket != bucket:
        return "drop:foreign"
    key = unquote_plus(raw_key)  # S3 URL-encodes keys in events (a space arrives as "+")
    head, sep, rest = key.partition("/")
    if head != environment or not sep:
        return "drop:foreign"
    if not name.startswith(("ObjectCreated:", "ObjectRemoved:")):
        return None  # replication, lifecycle, restore ...: not a change of what is served
    package, sep, tail = rest.partition("/")
    if package == PLATFORM_DIR:
        return "policy" if tail == POINTER else None
    if not sep or naming.check_package(package) is not None:
        return "drop:malformed"
    if tail == naming.METADATA or (unreleased and tail.startswith(f"{naming.DAGS_DIR}/")):
        return package
    return None


class Queue:
    """One consumer's SQS queue, through the standard AWS chain (``AWS_ENDPOINT_URL`` included)."""

    def __init__(
        self, url: str, bucket: str, environment: str, *, unreleased: bool = False, client: Any = None
    ) -> None:
        self.url, self.bucket, self.environment, self.unreleased = url, bucket, environment, unreleased
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from botocore.config import Config

            # Read timeout above the longest long poll (20 s), or botocore cuts the poll short.
            config = Config(retries={"mode": "standard"}, connect_timeout=5, read_timeout=30)
            self._client = s3.session().create_client("sqs", config=config)
        return self._client

    def receive(self, wait_seconds: int = 20, *, drain: int = 10) -> Batch:
        """Long-poll once (up to ``wait_seconds``), then, if anything came, take what is already
        waiting (``WaitTimeSeconds=0``, at most ``drain`` more calls), so a burst becomes one batch.
        StorageError when the queue cannot be read."""
        batch = Batch()
        wait = max(0, min(20, int(wait_seconds)))
        for _ in range(1 + drain):
            messages = self._receive(wait)
            for message in messages:
                one = parse(
                    message.get("Body", ""), self.bucket, self.environment, unreleased=self.unreleased
                )
                handle = message["ReceiptHandle"]
                one.receipts.append(handle)
                one.names[handle] = frozenset(one.packages | ({POLICY} if one.policy else set()))
                batch.merge(one)
            if len(messages) < 10:
                break
            wait = 0
        return batch

    def _receive(self, wait: int) -> list[dict[str, Any]]:
        try:
            resp = self.client.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
            )
        except Exception as exc:  # botocore, connection, credentials: one line, the caller falls back
            raise StorageError(f"{self.url}: cannot receive from the queue: {_describe(exc)}") from exc
        return list(resp.get("Messages", []))

    def delete(self, batch: Batch, *, failed: Collection[str] = ()) -> None:
        """Delete the batch's messages (10 per request), but those naming one of ``failed`` (see
        :meth:`Batch.settled`). StorageError if any delete failed: those messages come back after the
        visibility timeout, which only costs a repeated reconcile."""
        receipts = batch.settled(failed)
        failed_deletes = 0
        for start in range(0, len(receipts), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": handle}
                for i, handle in enumerate(receipts[start : start + 10])
            ]
            try:
                resp = self.client.delete_message_batch(QueueUrl=self.url, Entries=entries)
            except Exception as exc:
                raise StorageError(f"{self.url}: cannot delete messages: {_describe(exc)}") from exc
            failed_deletes += len(resp.get("Failed", []))
        if failed_deletes:
            raise StorageError(
                f"{self.url}: {failed_deletes} message(s) not deleted; they will be received again"
            )


def _describe(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{error.get('Code', '')} {error.get('Message', '')}".strip() or str(exc)
    return str(exc) or type(exc).__name__
