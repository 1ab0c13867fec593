"""Account metadata, materialised from the compacted ``accounts`` topic.

The directory is a plain dict keyed by account id. The worker fills it from the topic
(a null value deletes); replay fills it from a file or from the topic as of the range
start. An event whose account has no record yet is enriched with ``account=None``
(reported as ``unknown``) and scored as higher risk; the record applies from the moment it
arrives.
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

    __slots__ = ("_by_id",)

    def __init__(self) -> None:
        self._by_id: dict[str, Account] = {}

    def put(self, account: Account) -> None:
        self._by_id[account.account_id] = account

    def delete(self, account_id: str) -> None:
        self._by_id.pop(account_id, None)

    def get(self, account_id: str) -> Account | None:
        return self._by_id.get(account_id)

    def __len__(self) -> int:
        return len(self._by_id)
