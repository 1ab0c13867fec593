"""Compact hash tables of 64-bit integers, for per-account distinct values and fingerprints.

An account's distinct values (API keys, addresses, networks, ...) and prompt fingerprints
used to live in Python dicts keyed by the value strings. With a hundred thousand accounts,
each event touched a dozen scattered objects that way (the dict, every key string it
compared, every int value), and memory latency, not computation, set the per-event cost.
Here a table is one ``array('Q')``: a count, then open-addressed slots of plain integers,
so an event touches a few adjacent cache lines and the table holds no other object.

Two layouts share the probing:

* a **pair table** (:func:`pairs`): ``t[0]`` is the number of keys, ``t[1]`` the number
  ``h`` of header words that follow it (its owner's, carried through every rebuild: an
  account keeps its recent event ids there rather than in an array of their own), then
  ``cap`` slots of two words, ``key, value``;
* a **packed table** (:func:`packed`): ``t[0]`` is the number of keys, then ``cap``
  one-word slots, each ``key << PACK_BITS | value`` (for values below ``2**PACK_BITS``).

Key 0 marks an empty slot, so keys are never 0. The slot of a key is Fibonacci hashing of
the key, then linear probing. A table grows (doubling) before an insert that would take it
past seven-eighths full, and is rebuilt (never shrunk below its minimum) to delete: slots
are re-inserted in ascending order, so the layout is a pure function of the operations,
which is what lets the C hot path (:mod:`pipeline._hot`, same rules) and this module be
compared word for word.

Keys of strings are :func:`value_hash`: the UTF-8 bytes as a little-endian integer, plus
the length, modulo the Mersenne prime ``2**61 - 1``. It is stable across processes
(snapshots carry it), cheap in C (a few operations per 8 bytes) and in Python (one big-int
operation). Distinct strings collide with probability about ``2**-61`` unless built to;
a collision only merges two values of one account, which the account could as well have
done itself by not rotating.

>>> t = pairs()
>>> t = pair_set(t, 42, 7)
>>> pair_get(t, 42), pair_get(t, 43), t[0]
(7, None, 1)
>>> t = packed()
>>> t = packed_set(t, 5, 3)
>>> packed_get(t, 5), packed_get(t, 6)
(3, None)
>>> value_hash("198.51.100.7") == value_hash("198.51.100.7") != value_hash("198.51.100.8")
True
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator

M61 = (1 << 61) - 1
_LEN_MIX = 0x9E3779B1  # spreads the length (strings differing only by trailing NULs)
_FIB = 0x9E3779B97F4A7C15
_M64 = (1 << 64) - 1
PAIRS_MIN = 16  # slots of a new pair table
PACKED_MIN = 8  # slots of a new packed table
PACK_BITS = 33  # packed values: below 2**33 (bucket index << 1 | flag; indices < 2**32)
PACK_MASK = (1 << PACK_BITS) - 1
PACK_KEY_MAX = (1 << (64 - PACK_BITS)) - 1  # packed keys: 1 .. 2**31 - 1


def value_hash(text: str) -> int:
    """Stable 61-bit hash of a string (``_hot.value_hash`` computes the same in C)."""
    data = text.encode("utf-8", "surrogatepass")
    return (int.from_bytes(data, "little") + len(data) * _LEN_MIX) % M61


def _slot(key: int, cap: int) -> int:
    return ((key * _FIB) & _M64) >> (65 - cap.bit_length())


def _room(count: int, cap: int) -> int:
    """The capacity for ``count + 1`` keys, starting from ``cap`` (doubling): at most
    seven-eighths full. At three-quarters, an account with 13 or 14 distinct values held a
    32-slot ``seen`` table (672 bytes, past pymalloc's 512) instead of a 16-slot one (416);
    a probe stays within slots of a few cache lines (a 16-slot pair table's are four, a
    64-slot packed table's eight), so the longer probes cost little."""
    while (count + 1) * 8 > cap * 7:
        cap *= 2
    return cap


def _keep_all(key: int, value: int) -> bool:
    return True


# ---- pair tables: count, header length h, h header words, then (key, value) slots ----


#: one zero word: a table is made by repeating it, which allocates exactly the table (an
#: array built from bytes or a list keeps spare room for growth, and a table never grows
#: in place: 40 bytes of a typical account's 390-byte ``seen`` table)
_ZERO = array("Q", [0])


def pairs(cap: int = PAIRS_MIN, head: int = 0) -> array:
    """An empty pair table of ``cap`` slots (a power of two) after ``head`` zero header
    words."""
    t = _ZERO * (2 + head + 2 * cap)
    t[1] = head
    return t


def pair_base(t: array) -> int:
    """Where the slots of pair table ``t`` start (after its header)."""
    return 2 + t[1]


def pair_cap(t: array) -> int:
    return (len(t) - 2 - t[1]) >> 1


def pair_find(t: array, key: int) -> int:
    """Index in ``t`` of ``key``'s slot, or of the empty slot where it would go."""
    base = 2 + t[1]
    cap = (len(t) - base) >> 1
    i = _slot(key, cap)
    while True:
        p = base + 2 * i
        k = t[p]
        if k == key or k == 0:
            return p
        i = (i + 1) & (cap - 1)


def pair_get(t: array, key: int) -> int | None:
    p = pair_find(t, key)
    return t[p + 1] if t[p] else None


def pair_set(t: array, key: int, value: int) -> array:
    """Set ``key`` to ``value``; returns the table (a new, larger one after a growth)."""
    p = pair_find(t, key)
    if not t[p]:
        cap = pair_cap(t)
        if _room(t[0], cap) != cap:
            t = pair_rebuild(t, _keep_all, _room(t[0], cap))
            p = pair_find(t, key)
        t[p] = key
        t[0] += 1
    t[p + 1] = value
    return t


def pair_items(t: array) -> Iterator[tuple[int, int]]:
    """(key, value) of every key, in slot order."""
    for p in range(2 + t[1], len(t), 2):
        if t[p]:
            yield t[p], t[p + 1]


def pair_rebuild(t: array, keep: Callable[[int, int], bool], cap: int | None = None) -> array:
    """A table of the entries for which ``keep(key, value)`` holds, re-inserted in slot
    order, of ``cap`` slots (None: the fewest from PAIRS_MIN up that hold them), with
    ``t``'s header."""
    kept = [(k, v) for k, v in pair_items(t) if keep(k, v)]
    base = pair_base(t)
    out = pairs(_room(len(kept) - 1, PAIRS_MIN) if cap is None else cap, base - 2)
    out[2:base] = t[2:base]
    for k, v in kept:
        p = pair_find(out, k)
        out[p] = k
        out[p + 1] = v
    out[0] = len(kept)
    return out


def pair_reheader(t: array, h: int) -> array:
    """Pair table ``t`` with a header of ``h`` words (at least ``t``'s: the new ones are
    zero); the slots are unchanged, as where a key goes depends only on it and ``cap``.

    >>> t = pair_set(pairs(head=1), 42, 7)
    >>> t[2] = 5
    >>> u = pair_reheader(t, 3)
    >>> u[1:5].tolist(), pair_get(u, 42), pair_items(u) is not None
    ([3, 5, 0, 0], 7, True)
    """
    old = t[1]
    if h < old:
        raise ValueError(f"a header only grows: {h} < {old}")
    out = t[: 2 + old] + _ZERO * (h - old) + t[2 + old :]
    out[1] = h
    return out


# ---- packed tables: count, then key << PACK_BITS | value slots ----


def packed(cap: int = PACKED_MIN) -> array:
    """An empty packed table of ``cap`` slots (a power of two)."""
    return _ZERO * (cap + 1)


def packed_find(t: array, key: int) -> int:
    cap = len(t) - 1
    i = _slot(key, cap)
    while True:
        w = t[1 + i]
        if w == 0 or w >> PACK_BITS == key:
            return 1 + i
        i = (i + 1) & (cap - 1)


def packed_get(t: array, key: int) -> int | None:
    w = t[packed_find(t, key)]
    return w & PACK_MASK if w else None


def packed_set(t: array, key: int, value: int) -> array:
    """Set ``key`` (1 .. PACK_KEY_MAX) to ``value`` (below 2**PACK_BITS); may return a new
    table."""
    p = packed_find(t, key)
    if not t[p]:
        cap = len(t) - 1
        if _room(t[0], cap) != cap:
            t = packed_rebuild(t, _keep_all, _room(t[0], cap))
            p = packed_find(t, key)
        t[0] += 1
    t[p] = key << PACK_BITS | value
    return t


def packed_items(t: array) -> Iterator[tuple[int, int]]:
    for w in t[1:]:
        if w:
            yield w >> PACK_BITS, w & PACK_MASK


def packed_rebuild(t: array, keep: Callable[[int, int], bool], cap: int | None = None) -> array:
    """As :func:`pair_rebuild`; None: the fewest slots from PACKED_MIN up."""
    kept = [(k, v) for k, v in packed_items(t) if keep(k, v)]
    out = packed(_room(len(kept) - 1, PACKED_MIN) if cap is None else cap)
    for k, v in kept:
        out[packed_find(out, k)] = k << PACK_BITS | v
    out[0] = len(kept)
    return out
