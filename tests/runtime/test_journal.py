from pcdrl.runtime.journal import Journal, work_key


def test_journal_resumes_and_survives_a_torn_line(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.put_many([(work_key("a"), 1), (work_key("b"), [2, 3])])
    with open(path, "a") as handle:
        handle.write('{"key": "torn", "val')  # a write cut short by a kill
    with Journal(path) as journal:
        assert journal.get(work_key("b")) == [2, 3] and "torn" not in journal and journal.torn_lines == 1
        journal.put_many([(work_key("c"), 4)])
    with Journal(path) as journal:
        assert journal.get(work_key("c")) == 4 and journal.get(work_key("a")) == 1


def test_work_key_depends_on_every_input():
    assert work_key("m", [1, 2], 8) != work_key("m", [1, 2], 9)
    assert work_key({"a": 1, "b": 2}) == work_key({"b": 2, "a": 1})
