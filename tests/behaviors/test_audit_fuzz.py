"""Fuzzing the audit-file reader (hypothesis): any bytes, and any JSON value on any line, give either a list of
entries with unique ids or an `AuditFileError` that names the file (and the line, when one line is at fault);
never a traceback of another type.

Files are arbitrary bytes, lines of arbitrary JSON, or plausible entries with one field set to arbitrary JSON, so
both the checks and the paths past them are reached. Each crash the fuzzer found is kept as an `@example`.
"""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from pcdrl.behaviors.audit import FIELDS, AuditEntry, AuditFileError, read_audit_file
from pcdrl.behaviors.checkers import CHECKERS

FUZZ = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)
extras = {  # valid values mostly: bad ones come from setting a field to arbitrary JSON
    "id": st.sampled_from(["x", "y", "audit/0001", "audit/0002", 1, "1", ""]),
    "chat": st.booleans(),
    "read_last": st.integers(0, 9),
    "split": st.sampled_from(["", "train", "test", "dev"]),
    "max_new_tokens": st.integers(0, 64),
}
text = st.text(min_size=1, max_size=12)
with_answer = st.fixed_dictionaries(
    {"prompt": text, "question": text, "options": st.lists(st.sampled_from(["A", "B", "C", "a", " "]), min_size=2,
                                                            max_size=4, unique=True),
     "answer": st.sampled_from(["A", "B", "a", 0, 1, 3, -1])}, optional=extras)
with_checker = st.fixed_dictionaries(
    {"prompt": text, "checker": st.sampled_from(sorted(CHECKERS) + ["refusals"])},
    optional={**extras, "options": st.sampled_from([["Yes", "No"], ["No", "Yes", "Maybe"], ["Yes", "No", "yes"]]),
              "question": text})
plausible_entries = with_answer | with_checker
one_field_wild = st.tuples(plausible_entries, st.sampled_from(sorted(FIELDS) + ["optoins"]), json_values).map(
    lambda t: {**t[0], t[1]: t[2]})
entries = plausible_entries | one_field_wild | json_values
line_texts = st.one_of(
    entries.map(json.dumps),
    entries.map(lambda e: json.dumps(e, ensure_ascii=False)),  # raw U+2028, U+0085, ... inside JSON strings
    st.sampled_from(["", "# a comment", "  ", "{", "[[[[[[[[[[", "NaN", '"\\ud800"', "\ufeff{}", "\x00"]),
)
files = st.one_of(
    st.binary(max_size=200),
    st.tuples(st.lists(line_texts, min_size=1, max_size=5), st.sampled_from(["\n", "\r\n"])).map(
        lambda t: t[1].join(t[0]).encode("utf-8", "surrogatepass")),
)

# Crashes the fuzzer found, each once a traceback of another type (or a wrong result):
UNDECODABLE = b'{"prompt": "caf\xe9", "checker": "refusal"}\n'  # UnicodeDecodeError from read_text
DEEP = b"[" * 100_000  # RecursionError from json.loads
HUGE_INT = b'{"prompt": "p", "checker": "refusal", "read_last": ' + b"9" * 5000 + b"}"  # ValueError: int digits
# A raw U+2028 inside a JSON string: str.splitlines split the line there.
LINE_SEPARATOR = json.dumps({"prompt": "a\u2028b", "checker": "refusal"}, ensure_ascii=False).encode()
BOM = b'\xef\xbb\xbf{"prompt": "p", "checker": "refusal"}'  # "Unexpected UTF-8 BOM" on line 1
SURROGATE = b'{"prompt": "\\ud800", "checker": "refusal"}'  # a str that no UTF-8 writer can write
DICT_ID = b'{"prompt": "p", "checker": "refusal", "id": {"a": 1}}'  # id "{'a': 1}"
CASE_TWINS = b'{"prompt": "p", "checker": "refusal", "options": ["Yes", "No", "yes"]}'  # checker's answer ambiguous


def _path() -> Path:
    return Path(tempfile.mkdtemp(prefix="audit-fuzz-")) / "audit.jsonl"


def _check(data: bytes) -> list[AuditEntry] | None:
    path = _path()
    path.write_bytes(data)
    n_lines = data.count(b"\n") + 1
    try:
        found = read_audit_file(path)
    except AuditFileError as err:
        message = str(err)
        assert message.startswith(f"{path}:"), message
        line = re.match(rf"{re.escape(str(path))}:(\d+): ", message)
        assert line is None or 1 <= int(line[1]) <= n_lines, message
        message.encode("utf-8")  # printable: no lone surrogate from the file reaches the terminal
        return None
    assert found and len({e.id for e in found}) == len(found)
    lines = data.decode("utf-8-sig").split("\n")
    for entry in found:
        assert json.loads(lines[entry.line - 1])["prompt"] == entry.prompt  # line numbers count "\n" only
        assert isinstance(entry.id, str) and entry.id.strip()
        assert len(entry.options) >= 2 and len({o.lower() for o in entry.options}) == len(entry.options) \
            or entry.checker is None
        assert entry.answer is None if entry.checker else 0 <= entry.answer < len(entry.options)
        assert entry.read_last >= 1 and entry.max_new_tokens >= 1
        (entry.prompt + entry.question + "".join(entry.options)).encode("utf-8")
    return found


@settings(FUZZ, max_examples=400)
@given(data=files)
@example(data=UNDECODABLE)
@example(data=DEEP)
@example(data=HUGE_INT)
@example(data=SURROGATE)
@example(data=DICT_ID)
@example(data=CASE_TWINS)
@example(data=LINE_SEPARATOR)
@example(data=BOM)
def test_any_file_reads_or_raises_audit_file_error(data):
    event("read" if _check(data) else "refused")  # --hypothesis-show-statistics shows the share that reads


@pytest.mark.parametrize("data, message", [
    (UNDECODABLE, r":1: not UTF-8 text \(byte 0xe9 at column 16\)"),
    (DEEP, r":1: not valid JSON \(nested too deeply\)"),
    (HUGE_INT, r":1: not valid JSON \(Exceeds the limit"),
    (SURROGATE, r":1: field 'prompt': holds a lone surrogate \\ud800"),
    (DICT_ID, r":1: field 'id': a non-empty string or an integer, got dict"),
    (CASE_TWINS, r":1: field 'options': options \['Yes', 'yes'\] differ only in case"),
])
def test_each_crash_found_is_now_a_clear_error(data, message):
    path = _path()
    path.write_bytes(data)
    with pytest.raises(AuditFileError, match=re.escape(str(path)) + message):
        read_audit_file(path)


@pytest.mark.parametrize("data", [LINE_SEPARATOR, BOM])
def test_valid_lines_once_misread_now_read(data):
    (entry,) = _check(data)
    assert entry.line == 1 and entry.checker == "refusal"


@settings(FUZZ, max_examples=150)
@given(ids=st.lists(st.sampled_from(["a", "b", "audit/0002", "audit/0003", 2, "2", None]), min_size=1, max_size=5))
def test_ids_stay_unique_whatever_mix_of_given_and_default_ids(ids):
    lines = [{"prompt": "p", "checker": "refusal", **({} if i is None else {"id": i})} for i in ids]
    found = _check("\n".join(map(json.dumps, lines)).encode())
    given_ids = [str(i) for i in ids if i is not None]
    if found is not None:
        assert [e.id for e in found] == [str(i) if i is not None else f"audit/{n:04d}" for n, i in enumerate(ids, 1)]
    else:  # refused only when two lines would share an id
        all_ids = [str(i) if i is not None else f"audit/{n:04d}" for n, i in enumerate(ids, 1)]
        assert len(set(all_ids)) < len(all_ids) or len(set(given_ids)) < len(given_ids)
