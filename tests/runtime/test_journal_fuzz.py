"""Property tests of the journal (hypothesis), against what pcdrl/runtime/journal.py promises:

- any sequence of `put_many` batches reads back exactly, in the run that wrote it and in the one that resumes;
- a kill mid-write (the file cut at any byte of a batch, perhaps padded with NULs) loses only the record cut short,
  however many times it happens, and resuming after it loses nothing more;
- any other bytes anywhere give a `JournalError` naming the file and the line, or are a record, a blank line or
  a torn write; never another exception, and opening never rewrites what is there.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from pcdrl.runtime.journal import Journal, JournalError, record_line

FUZZ = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
keys = st.text(max_size=6) | st.sampled_from(["a", "b", "\ud800", "\n", '"}'])  # repeats, surrogates, escapes
batches = st.lists(st.lists(st.tuples(keys, json_values), max_size=4), max_size=5)


def _path() -> Path:
    return Path(tempfile.mkdtemp(prefix="journal-fuzz-")) / "j.jsonl"


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN, and of the same types (1 is not 1.0 or True)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b) or (math.isnan(a) and math.isnan(b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _same_records(done: dict, expected: dict) -> bool:
    return list(done) == list(expected) and all(_same(done[k], expected[k]) for k in expected)


@settings(FUZZ, max_examples=150)
@given(batches=batches)
def test_any_sequence_of_appends_reads_back_exactly(batches):
    path, expected = _path(), {}
    with Journal(path) as journal:
        for batch in batches:
            journal.put_many(batch)
            expected.update(batch)
            assert _same_records(journal.done, expected)  # the writing run sees what a resume will read
    with Journal(path) as journal:
        assert _same_records(journal.done, expected) and journal.torn_lines == 0


def test_a_value_json_cannot_hold_is_refused_before_anything_is_kept(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.put_many([("a", [1, (2, 3)])])
        with pytest.raises(TypeError, match="not JSON serializable"):
            journal.put_many([("b", 1), ("c", {1, 2})])
        with pytest.raises(TypeError, match="a journal key is a string"):
            journal.put_many([(("x",), 1)])
        assert journal.done == {"a": [1, [2, 3]]} and "b" not in journal  # a list, as a resume reads it
        value = [1]
        journal.put_many([("d", value)])
        value.append(2)  # the caller's object is not the journal's
        assert journal.get("d") == [1]
    assert Journal(path).done == {"a": [1, [2, 3]], "d": [1]}


kills = st.lists(st.tuples(st.lists(st.tuples(keys, json_values), min_size=1, max_size=6), st.floats(0, 1),
                           st.integers(0, 3)), min_size=1, max_size=4)


@settings(FUZZ, max_examples=100)
@given(kills=kills, before=batches)
def test_kills_mid_write_lose_only_the_record_cut_short(kills, before):
    """Each kill cuts one put_many's bytes at any point, then the job resumes. A power cut may also turn some of
    the bytes past the cut into NULs (the file grew, the data did not reach the disk)."""
    path, expected = _path(), {}
    with Journal(path) as journal:
        for batch in before:
            journal.put_many(batch)
            expected.update(batch)
    for batch, where, nuls in kills:
        old = path.read_bytes()
        lead = b"\n" if old and not old.endswith(b"\n") else b""  # what put_many writes after a torn line
        lines = [record_line(k, v).encode() for k, v in batch]
        data = lead + b"".join(line + b"\n" for line in lines)
        cut = int(where * len(data))
        path.write_bytes(old + data[:cut] + b"\0" * min(nuls, len(data) - cut))
        ends = [len(lead) + sum(len(x) + 1 for x in lines[: i + 1]) - 1 for i in range(len(lines))]
        complete = sum(end <= cut for end in ends)  # a record whose text is whole is read, newline or not
        expected.update(batch[:complete])
        with Journal(path) as journal:
            assert _same_records(journal.done, expected)
            journal.put_many(batch[complete:])  # the resumed job redoes what was cut
            expected.update(batch[complete:])
    with Journal(path) as journal:
        assert _same_records(journal.done, expected)


torn_writes = st.tuples(keys, json_values, st.floats(0, 1), st.integers(0, 3)).map(
    lambda t: record_line(t[0], t[1]).encode()[: int(t[2] * len(record_line(t[0], t[1])))] + b"\0" * t[3])
GARBAGE = [b"not json", b"[1, 2]", b'{"key": "a"}', b'{"key": ["a"], "value": 1}', b'{"value": 1, "key": "a"}x',
           b"\xff\xfe", b"[" * 5000, b'{"key": "a", "value": 1, "extra": 2}', b"1" * 5000]


@settings(FUZZ, max_examples=300)
@given(line=st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")) | st.sampled_from(GARBAGE) | torn_writes,
       before=st.integers(0, 3), after=st.integers(0, 3))
@example(line=b'{"key": "a", "val', before=2, after=2)  # a torn write ended by a resume: skipped
@example(line=b"\0" * 8, before=1, after=1)  # a power cut's NULs: skipped
@example(line=b"   \t", before=1, after=1)  # a blank line: skipped
def test_any_line_in_the_middle_is_a_record_skipped_or_a_clear_error(line, before, after):
    path = _path()
    records = [(f"k{i}", i) for i in range(before + after)]
    lines = [record_line(k, v).encode() for k, v in records]
    data = b"\n".join(lines[:before] + [line] + lines[before:]) + b"\n"
    path.write_bytes(data)
    try:
        journal = Journal(path)
    except JournalError as err:
        event("refused")
        assert str(err).startswith(f"{path}:{before + 1}: ") and "Move it aside" in str(err)
        assert path.read_bytes() == data
        return
    event("skipped" if len(journal.done) == len(records) else "a record")
    assert all(journal.get(k) == v for k, v in records)
    assert line.strip() == b"" or journal.torn_lines == 1 or len(journal.done) == len(records) + 1
    journal.close()


@pytest.mark.parametrize("line", GARBAGE)
def test_garbage_mid_file_names_the_line(tmp_path, line):
    path = tmp_path / "j.jsonl"
    path.write_bytes(record_line("a", 1).encode() + b"\n" + line + b"\n" + record_line("b", 2).encode() + b"\n")
    with pytest.raises(JournalError, match=r"j.jsonl:2: .*not a journal of finished work, or it was damaged"):
        Journal(path)


@settings(FUZZ, max_examples=300)
@given(data=st.binary(max_size=120) | st.tuples(batches, st.binary(max_size=40)).map(
    lambda t: b"".join(record_line(k, v).encode() + b"\n" for b in t[0] for k, v in b) + t[1]))
@example(data=b"\xff\xfe")  # was: UnicodeDecodeError from read_text
@example(data=b"[" * 5000)  # was: RecursionError from json.loads
@example(data=b"1" * 5000)  # was: ValueError (an int past 4300 digits), not a JSONDecodeError
@example(data=b"[1, 2]\n")  # was: silently counted as a torn line
def test_any_bytes_open_or_raise_journal_error_and_are_never_rewritten(data):
    path = _path()
    path.write_bytes(data)
    try:
        journal = Journal(path)
    except JournalError:
        event("refused")
        assert path.read_bytes() == data
        return
    event("opened")
    journal.put_many([("new", 1)])
    journal.close()
    written = path.read_bytes()
    assert written.startswith(data) and written.endswith(b'{"key": "new", "value": 1}\n')
    assert Journal(path).get("new") == 1
