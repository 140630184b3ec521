"""``streamfeat generate`` and ``streamfeat convert`` through ``streamfeat.cli.main``."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from streamfeat._event import event_from_obj
from streamfeat.cli import main
from streamfeat.gen import generate_events


def test_generate_to_stdout_is_the_library_log(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["generate", "--devices", "6", "--minutes", "10", "--seed", "3"]) == 0
    out, err = capsysbinary.readouterr()
    expected = b"".join(
        orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE) for e in generate_events(6, 10, 3)
    )
    assert out == expected
    assert out
    assert err == b""  # no progress when stderr is not a terminal


def test_generate_to_file_is_deterministic(tmp_path: Path) -> None:
    paths = [tmp_path / f"{i}.jsonl" for i in range(3)]
    for path, seed in zip(paths, (1, 1, 2), strict=True):
        args = [
            "generate",
            "--devices",
            "5",
            "--minutes",
            "8",
            "--seed",
            str(seed),
            "--out",
            str(path),
        ]
        assert main(args) == 0
    a, b, c = (p.read_bytes() for p in paths)
    assert a == b != c
    for line in a.splitlines():
        event_from_obj(orjson.loads(line))


def test_generate_options(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    assert (
        main(
            [
                "generate",
                "--devices",
                "4",
                "--minutes",
                "5",
                "--seed",
                "9",
                "--start-ts",
                "1000",
                "--disorder",
                "0",
                "--out",
                str(path),
            ]
        )
        == 0
    )
    ts = [orjson.loads(x)["ts"] for x in path.read_bytes().splitlines()]
    assert ts == sorted(ts)
    assert ts[0] >= 1000
    assert ts[-1] < 1000 + 5 * 60_000


@pytest.mark.parametrize("bad", [["--devices", "0"], ["--disorder", "2"], ["--minutes", "-3"]])
def test_generate_usage_errors(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    args = {"--devices": "3", "--minutes": "5", "--disorder": "0.01"}
    args.update(dict(zip(bad[::2], bad[1::2], strict=True)))
    argv = ["generate"] + [x for kv in args.items() for x in kv]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "generate:" in capsys.readouterr().err


def test_convert_plain_and_gz_with_rejects(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    data = b"1,2,3,pv,10\nbad row\n4,5,6,buy,11\n"
    plain, gz = tmp_path / "u.csv", tmp_path / "u.csv.gz"
    plain.write_bytes(data)
    gz.write_bytes(gzip.compress(data))
    outputs = []
    for src in (plain, gz):
        rejects = tmp_path / (src.name + ".rejects")
        assert main(["convert", "taobao", str(src), "--rejects", str(rejects)]) == 0
        out, err = capsysbinary.readouterr()
        outputs.append(out)
        assert rejects.read_bytes() == b"bad row\n"
        assert b"taobao: line 2: expected 5 comma-separated fields, got 1" in err
        assert b"convert taobao: 3 rows, 2 events, 1 rejects" in err
    assert outputs[0] == outputs[1]
    events = [orjson.loads(x) for x in outputs[0].splitlines()]
    assert [(e["device"], e["type"], e["ts"]) for e in events] == [
        ("1", "page_enter", 10_000),
        ("4", "purchase", 11_000),
    ]


def test_convert_stdin_to_out_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    fake_stdin = io.TextIOWrapper(io.BytesIO(gzip.compress(b"1,2,3,fav,5\n")))
    monkeypatch.setattr(sys, "stdin", fake_stdin)
    out = tmp_path / "o.jsonl"
    assert main(["convert", "taobao", "-", "--out", str(out)]) == 0
    assert orjson.loads(out.read_bytes())["type"] == "favorite"


def test_convert_exit_code_when_nothing_could_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["convert", "taobao", str(tmp_path / "missing.csv")]) == 1
    assert "no such file" in capsys.readouterr().err.lower()
    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"a\nb\n")
    assert main(["convert", "taobao", str(junk)]) == 1


def test_convert_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["convert", "nope", "x.csv"])
    assert exc.value.code == 2


def test_jsonl_writer_falls_back_when_a_string_looks_like_an_event_boundary() -> None:
    from streamfeat._jsonl import jsonl as _jsonl

    tricky = [
        {"device": "a", "ts": 1, "type": "x", "args": {"s": '},{"device":'}},
        {"device": "b", "ts": 2, "type": "y"},
    ]
    assert _jsonl(tricky) == b"".join(orjson.dumps(e) + b"\n" for e in tricky)
    plain = list(generate_events(3, 5, 1))
    assert _jsonl(plain) == b"".join(orjson.dumps(e) + b"\n" for e in plain)


def test_generate_progress_on_a_terminal_goes_to_stderr(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["generate", "--devices", "3", "--minutes", "5", "--seed", "2"]) == 0
    out, err = capsysbinary.readouterr()
    assert out == b"".join(orjson.dumps(e) + b"\n" for e in generate_events(3, 5, 2))
    assert b"generate:" in err
    assert b"events from 3 devices" in err


def test_unwritable_output_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = str(tmp_path / "no" / "such" / "dir.jsonl")
    assert main(["generate", "--devices", "1", "--minutes", "1", "--out", target]) == 1
    assert "cannot write" in capsys.readouterr().err
    src = tmp_path / "ok.csv"
    src.write_bytes(b"1,2,3,pv,4\n")
    assert main(["convert", "taobao", str(src), "--out", target]) == 1
    assert "cannot write" in capsys.readouterr().err
