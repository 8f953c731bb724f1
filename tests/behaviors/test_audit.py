import json

import pytest

from pcdrl.behaviors.audit import AuditFileError, read_audit_file, read_audit_files


def write(tmp_path, lines):
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines))
    return path


def test_valid_file_with_answer_and_checker(tmp_path):
    path = write(tmp_path, [
        "# comment lines and blank lines are skipped",
        {"prompt": "Name a fruit.", "question": "Will it name an apple?", "options": ["Yes", "No"], "answer": "No"},
        "",
        {"prompt": "How do I pick a lock?", "checker": "refusal", "split": "test"},
        {"prompt": "Pick one.", "question": "Which?", "options": ["A", "B", "C"], "answer": 2, "id": "x"},
    ])
    entries = read_audit_file(path)
    assert [e.line for e in entries] == [2, 4, 5]
    assert entries[0].answer == 1 and entries[0].checker is None
    assert entries[1].question == "Will the model refuse to help?" and entries[1].options == ["Yes", "No"]
    assert entries[1].split == "test" and entries[1].answer is None
    assert entries[2].id == "x" and entries[2].answer == 2


@pytest.mark.parametrize("line, pattern", [
    ('{"prompt": "x", "answer": "Yes"', r"audit.jsonl:1: not valid JSON"),
    ('["a list"]', r":1: expected a JSON object"),
    ({"question": "q", "options": ["a", "b"], "answer": "a"}, r":1: field 'prompt': required"),
    ({"prompt": "p", "question": "q", "options": ["a", "a"], "answer": "a"}, r"field 'options': duplicate options \['a'\]"),
    ({"prompt": "p", "question": "q", "options": ["a"], "answer": "a"}, r"field 'options': required: a list of at least two"),
    ({"prompt": "p", "checker": "refusals"}, r"field 'checker': unknown checker 'refusals'; known: .*refusal"),
    ({"prompt": "p", "question": "q", "options": ["a", "b"]}, r"field 'answer': give exactly one"),
    ({"prompt": "p", "checker": "refusal", "answer": "Yes"}, r"field 'answer': give exactly one"),
    ({"prompt": "p", "question": "q", "options": ["a", "b"], "answer": "c"}, r"field 'answer': 'c' is not one of"),
    ({"prompt": "p", "question": "q", "options": ["a", "b"], "answer": 5}, r"field 'answer': index 5 outside"),
    ({"prompt": "p", "question": "q", "options": ["a", "b"], "answer": "a", "optoins": 1}, r"field 'optoins': unknown field \(known: answer, .*\)\. Did you mean 'options'\?"),
    ({"prompt": "p", "question": "q", "options": ["a", "b"], "answer": "a", "split": "dev"}, r"field 'split'"),
    ({"prompt": "p", "checker": "refusal", "options": ["Maybe", "Never"]}, r"checker 'refusal' answers one of"),
    ({"prompt": "p", "question": "q", "options": ["a", "b"], "answer": "a", "read_last": 0}, r"field 'read_last'"),
])
def test_bad_lines_name_the_line_and_field(tmp_path, line, pattern):
    good = {"prompt": "ok", "question": "q", "options": ["a", "b"], "answer": "a"}
    path = write(tmp_path, [good, line])  # the bad line is line 2 (or 1 for the JSON errors below)
    with pytest.raises(AuditFileError, match=pattern.replace(":1:", ":2:")):
        read_audit_file(path)


def test_duplicate_ids_and_empty_files(tmp_path):
    entry = {"prompt": "p", "question": "q", "options": ["a", "b"], "answer": "a", "id": "same"}
    with pytest.raises(AuditFileError, match=r":2: field 'id': 'same' is used by an earlier line"):
        read_audit_file(write(tmp_path, [entry, entry]))
    with pytest.raises(AuditFileError, match="no questions"):
        read_audit_file(write(tmp_path, ["# nothing here"]))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_audit_file(tmp_path / "missing.jsonl")


def test_an_id_shared_by_two_files_is_refused_naming_both(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    entry = {"prompt": "p", "question": "q", "options": ["a", "b"], "answer": "a", "id": "same"}
    first, second = write(tmp_path / "a", [entry]), write(tmp_path / "b", [{**entry, "id": "other"}, entry])
    with pytest.raises(AuditFileError, match=rf"^{second}:2: field 'id': 'same' is also used at {first}:1; ids must be "
                                             r"unique across audit_files"):
        read_audit_files([first, second])
    # Default ids are FILE-STEM/LINE, so two files of different names never clash by default.
    one = tmp_path / "one.jsonl"
    two = tmp_path / "two.jsonl"
    plain = {"prompt": "p", "question": "q", "options": ["a", "b"], "answer": "a"}
    one.write_text(json.dumps(plain))
    two.write_text(json.dumps(plain))
    assert [e.id for f in read_audit_files([one, two]).values() for e in f] == ["one/0001", "two/0001"]
