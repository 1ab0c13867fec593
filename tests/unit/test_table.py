"""Integer hash tables (pipeline/features/table.py), and their C twins in pipeline._hot."""

from __future__ import annotations

from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import _hot
from pipeline.features import table
from pipeline.features.windows import _LAST, HEAD, KNOWN, _Tables

KEYS = st.integers(min_value=1, max_value=2**64 - 1)
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)


@given(
    st.lists(st.tuples(KEYS, st.integers(0, 2**64 - 1)), max_size=300),
    st.lists(st.integers(0, 2**64 - 1), max_size=12),
)
def test_pair_table_behaves_as_a_dict_and_keeps_its_header(
    ops: list[tuple[int, int]], head: list[int]
) -> None:
    t, model = table.pairs(head=len(head)), {}
    t[2 : 2 + len(head)] = array("Q", head)
    for key, value in ops:
        t = table.pair_set(t, key, value)
        model[key] = value
    assert t[0] == len(model)
    assert dict(table.pair_items(t)) == model
    assert all(table.pair_get(t, k) == v for k, v in model.items())
    cap = table.pair_cap(t)
    assert cap & (cap - 1) == 0 and len(model) * 8 <= cap * 7  # a power of two, <= 7/8 full
    assert cap == table.PAIRS_MIN or len(model) * 16 > cap * 7  # and no larger than needed
    assert len(t) == 2 + len(head) + 2 * cap
    assert list(t[1 : 2 + len(head)]) == [len(head), *head]  # carried through every growth


@given(
    st.lists(
        st.tuples(st.integers(1, table.PACK_KEY_MAX), st.integers(0, table.PACK_MASK)),
        max_size=200,
    ),
    st.integers(0, table.PACK_MASK),
)
def test_packed_table_behaves_as_a_dict_and_rebuilds_to_fit(
    ops: list[tuple[int, int]], floor: int
) -> None:
    t, model = table.packed(), {}
    for key, value in ops:
        t = table.packed_set(t, key, value)
        model[key] = value
    assert dict(table.packed_items(t)) == model
    kept = table.packed_rebuild(t, lambda k, v: v >= floor)
    assert dict(table.packed_items(kept)) == {k: v for k, v in model.items() if v >= floor}
    assert len(kept) - 1 == table._room(kept[0] - 1, table.PACKED_MIN)


@given(TEXT)
def test_value_hash_in_c_equals_python(text: str) -> None:
    assert _hot.value_hash(text) == table.value_hash(text) < table.M61


def test_value_hash_separates_neighbours() -> None:
    texts = [f"198.51.{a}.{b}" for a in range(256) for b in range(256)]
    assert len({table.value_hash(t) for t in texts}) == len(texts)
    assert table.value_hash("a") != table.value_hash("a\x00")


# seen values: last bucket << 32 | back << 4 | flags (windows._stamp)
SEEN_VALUES = st.builds(
    lambda last, back, flags: last << _LAST | back << 4 | flags,
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**28 - 1),
    st.integers(0, 15),
)


@settings(max_examples=300)
@given(
    st.lists(st.tuples(KEYS, SEEN_VALUES), max_size=120),
    st.integers(70, 2**32 - 1),  # bucket indices of 2000-2099 (codec), well above a window
    st.integers(0, 70),
)
def test_close_path_table_operations_in_c_equal_python(
    entries: list[tuple[int, int]], hi: int, width: int
) -> None:
    seen = _with_ids(table.pairs(head=HEAD))
    for key, value in entries:
        seen = table.pair_set(seen, key, value)
    lo = hi - width
    assert _hot.scan_seen(seen, lo, hi) == _Tables.scan_seen(seen, lo, hi)
    c, py = _hot.prune_seen(seen, lo), _Tables.prune_seen(seen, lo)
    assert (c is None) == (py is None) and (c is None or c == py)
    if py is not None:
        assert py[1 : 2 + HEAD] == seen[1 : 2 + HEAD]  # the header, carried
        floor = (lo + 1) << _LAST
        assert all(v >= floor or v & KNOWN for _, v in table.pair_items(py))
    fps = table.packed()
    for key, value in entries:
        fps = table.packed_set(fps, key % table.PACK_KEY_MAX + 1, (value >> 30) & table.PACK_MASK)
    c, py = _hot.expire_fps(fps, lo), _Tables.expire_fps(fps, lo)
    assert (c is None) == (py is None) and (c is None or c == py)
    assert _hot.repeated_fps(fps, lo) == _Tables.repeated_fps(fps, lo)


@settings(max_examples=300)
@given(
    st.lists(st.tuples(KEYS, SEEN_VALUES), max_size=120),
    st.lists(st.integers(0, 200), max_size=60),
    st.lists(st.integers(0, 200), max_size=60),
)
def test_remember_in_c_equals_python(
    entries: list[tuple[int, int]], net_at: list[int], agent_at: list[int]
) -> None:
    """Known flags set in place, at most KNOWN_CAP per dimension, only for present keys."""
    seen = _with_ids(table.pairs(head=HEAD))
    for key, value in entries:
        seen = table.pair_set(seen, key, value)
    keys = [k for k, _ in entries] + [0x1234, 7]  # present keys, and absent ones
    nets = [keys[i % len(keys)] for i in net_at]
    agents = [keys[i % len(keys)] for i in agent_at]
    c, py = array("Q", seen), array("Q", seen)
    _hot.remember(c, nets, agents)
    _Tables.remember(py, nets, agents)
    assert c == py


def test_remember_stops_at_the_cap() -> None:
    from pipeline.features.windows import D_AGENT, D_NET, KNOWN_CAP

    seen = table.pairs()
    for key in range(1, 101):
        seen = table.pair_set(seen, key, 5 << _LAST | (D_NET if key <= 50 else D_AGENT))
    nets, agents = list(range(1, 51)), list(range(51, 101))
    for remember in (_hot.remember, _Tables.remember):
        t = array("Q", seen)
        remember(t, nets, agents)
        known = [k for k, v in table.pair_items(t) if v & KNOWN]
        assert sorted(known) == [*nets[:KNOWN_CAP], *agents[:KNOWN_CAP]]


def _with_ids(t: array) -> array:
    """An account's seen table: its header (the event-id ring) filled with non-zero words,
    so that an operation reading it as slots, or losing it, shows."""
    t[2 : 2 + HEAD] = array("Q", [3, *range(2**63, 2**63 + HEAD - 1)])
    return t
