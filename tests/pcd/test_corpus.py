import json

import pytest

from pcdrl.models import load_tokenizer
from pcdrl.pcd.config import CorpusConfig, WindowConfig
from pcdrl.pcd.corpus import CorpusError, build_windows, load_texts


def test_jsonl_and_parquet_corpora_load_through_datasets(tmp_path, tiny_model_dir):
    import datasets

    import random

    rng = random.Random(0)
    rows = [{"body": " ".join(rng.choice("abcdefghij") * rng.randint(1, 5) for _ in range(60))} for _ in range(10)]
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "c.parquet"))
    tokenizer = load_tokenizer(tiny_model_dir)
    window = WindowConfig(prefix_len=4, middle_len=4, suffix_len=4)
    for name in ("c.jsonl", "c.parquet"):
        config = CorpusConfig(path=str(tmp_path / name), text_field="body", max_windows=50)
        assert load_texts(config)[str(tmp_path / name)][3] == rows[3]["body"]
        windows = build_windows(config, window, tokenizer)
        assert windows.train.shape[1] == 12 and len(windows.train) + len(windows.heldout) == 50
        # The split partitions the windows: none is both trained on and held out.
        train_rows = {tuple(r) for r in windows.train.tolist()}
        assert not any(tuple(r) in train_rows for r in windows.heldout.tolist())


def test_missing_text_field_lists_the_columns(tmp_path):
    (tmp_path / "c.jsonl").write_text(json.dumps({"body": "x"}))
    with pytest.raises(CorpusError, match=r"no column 'text'; its columns are \['body'\]"):
        load_texts(CorpusConfig(path=str(tmp_path / "c.jsonl")))


def test_unknown_builtin_source_lists_the_known_ones():
    from pcdrl.runtime.config_loader import ConfigError

    # Refused when the config is made, before any text loads.
    with pytest.raises(ConfigError, match=r"unknown source 'wiki'; built-in ones are \['kjv', 'python-docs'\]"):
        CorpusConfig(sources=["wiki"])


def test_builtin_sources_are_offline_and_non_trivial():
    texts = load_texts(CorpusConfig(sources=["kjv", "python-docs"]))
    assert len(texts["kjv"]) > 1000 and texts["kjv"][0].startswith("In the beginning God created")
    assert len(texts["python-docs"]) > 100
