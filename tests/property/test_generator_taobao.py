"""Property tests of the Taobao converter: one output per line, round trip of valid rows."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streamfeat._event import event_from_obj
from streamfeat.gen.convert import Reject
from streamfeat.gen.convert.taobao import BEHAVIOR_TYPES, convert_taobao

ids = st.integers(min_value=0, max_value=10**12)
rows = st.tuples(
    ids,
    ids,
    ids,
    st.sampled_from(sorted(BEHAVIOR_TYPES)),
    st.integers(min_value=0, max_value=(2**53 - 1) // 1000),
)


@given(st.lists(st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")), max_size=30))
def test_arbitrary_lines_give_one_valid_event_or_one_reject_each(lines: list[bytes]) -> None:
    out = list(convert_taobao(line + b"\n" for line in lines))
    assert len(out) == len(lines)
    for n, (line, obj) in enumerate(zip(lines, out, strict=True), 1):
        if isinstance(obj, Reject):
            assert obj.line == n
            assert obj.raw == line.rstrip(b"\r")
            assert obj.reason
        else:
            event_from_obj(obj)


@given(st.lists(rows, max_size=30))
def test_valid_rows_round_trip(source: list[tuple[int, int, int, str, int]]) -> None:
    text = b"".join(f"{u},{i},{c},{b},{s}\n".encode() for u, i, c, b, s in source)
    out = list(convert_taobao(text.splitlines(keepends=True)))
    back = {v: k for k, v in BEHAVIOR_TYPES.items()}
    # a plain reference: parse each event back into the row it came from
    assert [
        (int(e["device"]), int(e["item"]), e["args"]["category"], back[e["type"]], e["ts"] // 1000)
        for e in out
    ] == source
    for e in out:
        assert event_from_obj(e).page == "item_detail"
        assert e["ts"] % 1000 == 0
