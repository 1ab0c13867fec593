"""Account metadata, materialised from the compacted ``accounts`` topic.

The directory is a plain dict keyed by account id, remembering which topic partition each
record came from. ``accounts`` is co-partitioned with ``api.requests`` (same key, same
partition count), so a worker loads only the partitions it is assigned and drops them when
they are revoked. Replay fills it from a file or from the topic as of the range start.

An event whose account has no record yet is enriched with ``account=None`` (reported as
``unknown``) and scored as higher risk; the record applies from the moment it arrives.
"""

from __future__ import annotations

from pipeline.records import Account


class AccountDirectory:
    """Latest account record per account id.

    >>> d = AccountDirectory()
    >>> d.get("a1") is None
    True
    >>> d.put(Account("a1", "o1", 0.0, "pro", "DE", True))
    >>> d.get("a1").tier
    'pro'
    >>> d.delete("a1"); len(d)
    0
    """

    __slots__ = ("_by_id", "_by_partition")

    def __init__(self) -> None:
        self._by_id: dict[str, Account] = {}
        self._by_partition: dict[int, set[str]] = {}

    def put(self, account: Account, partition: int = -1) -> None:
        self._by_id[account.account_id] = account
        self._by_partition.setdefault(partition, set()).add(account.account_id)

    def delete(self, account_id: str, partition: int = -1) -> None:
        self._by_id.pop(account_id, None)
        self._by_partition.get(partition, set()).discard(account_id)

    def drop_partition(self, partition: int) -> int:
        """Forget every account loaded from ``partition`` (it was revoked)."""
        ids = self._by_partition.pop(partition, set())
        for account_id in ids:
            self._by_id.pop(account_id, None)
        return len(ids)

    def get(self, account_id: str) -> Account | None:
        return self._by_id.get(account_id)

    def __len__(self) -> int:
        return len(self._by_id)
