"""The continuation family's distractors: `random` as before, `same_source` from the item's own source and split."""
import hashlib
import json
import random
import types
from dataclasses import replace

import pytest

from pcdrl.behaviors.config import ContinuationConfig, DataBuildConfig
from pcdrl.behaviors.continuation import (build_continuation_items, content_words, nearest_same_source, option_overlap,
                                    own_source_share)
from pcdrl.runtime.journal import Journal
from pcdrl.runtime.config_loader import ConfigError, load_config
from pcdrl.models import load_tokenizer
from pcdrl.pcd.config import CorpusConfig, WindowConfig
from pcdrl.pcd.corpus import WindowOrigin, build_windows


class EchoBackend:
    """Continues a window with its own last tokens, reversed: distinct per window, and no model to run."""

    config = types.SimpleNamespace(model="echo")

    def __init__(self, tokenizer, reverse: bool = True):
        self.tokenizer, self.reverse = tokenizer, reverse

    def generate(self, prompts, max_new_tokens, ignore_eos=False):
        return [self.tokenizer.decode(p[-max_new_tokens:][:: -1 if self.reverse else 1]) for p in prompts]


def build(cfg, backend, tokenizer, tmp_path, model="m"):
    with Journal(tmp_path / f"journal-{random.random()}.jsonl") as journal:
        return build_continuation_items(cfg, backend, tokenizer, model, 1, journal, 0.3, seed=0)


def digest(items) -> str:
    rows = [[it.group, it.options, it.answer, it.split] for it in items]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def two_file_corpus(tmp_path, lines_b: int = 30):
    """A folder of two files with disjoint vocabularies: a window's source shows in its text."""
    rng = random.Random(1)
    folder = tmp_path / "corpus"
    folder.mkdir()
    cats = "the cat sat on a mat while dogs ran in parks".split()
    code = "return value of int list from dict key raises error".split()
    (folder / "a.txt").write_text("\n".join(" ".join(rng.choice(cats) for _ in range(30)) for _ in range(30)))
    (folder / "b.txt").write_text("\n".join(" ".join(rng.choice(code) for _ in range(30)) for _ in range(lines_b)))
    return folder


def test_random_distractors_are_the_items_built_before_same_source_existed(tiny_model_dir, tiny_corpus, tmp_path):
    # Digests of (group, options, answer) from the builder before `distractors` existed, on the same inputs.
    from pcdrl.models.backends.base import BackendConfig
    from pcdrl.models.backends.hf import HFBackend

    tokenizer = load_tokenizer(tiny_model_dir)
    cfg = ContinuationConfig(n_items=60, corpus=CorpusConfig(path=str(tiny_corpus), max_windows=4096,
                                                             heldout_fraction=0.5))
    echoed = build(cfg, EchoBackend(tokenizer), tokenizer, tmp_path)
    assert len(echoed) == 49 and echoed[0].options == ["nar s", "o elih", "sgod s", "rib dn"] and echoed[0].answer == 3
    assert digest(echoed) == "1a8ffdd5f8af1398a68eae9b76cb7860a68d75484e1a0d8d363a557c3d488a14"
    tiny = build(cfg, HFBackend(BackendConfig(model=tiny_model_dir, batch_size=16)), tokenizer, tmp_path)
    assert len(tiny) == 51 and digest(tiny) == "ff88e2fd2d9c6d8756585aa231079a705e0369230d97676fcb07230046cd6f55"


def test_windows_know_their_file_and_position_and_stay_the_same(tiny_model_dir, tmp_path):
    folder = two_file_corpus(tmp_path)
    tokenizer = load_tokenizer(tiny_model_dir)
    config, window = CorpusConfig(path=str(folder), max_windows=200), WindowConfig(prefix_len=4, middle_len=4,
                                                                                      suffix_len=4)
    plain = build_windows(config, window, tokenizer, seed=3)
    found = build_windows(config, window, tokenizer, seed=3, origins=True)
    assert plain.train.equal(found.train) and plain.heldout.equal(found.heldout) and plain.train_origins is None
    stream = tokenizer(tokenizer.eos_token.join((folder / "a.txt").read_text().splitlines()
                                                + (folder / "b.txt").read_text().splitlines()),
                       add_special_tokens=False)["input_ids"]
    origins = found.train_origins + found.heldout_origins
    rows = found.train.tolist() + found.heldout.tolist()
    assert len(origins) == len(rows) == 200
    for row, origin in zip(rows, origins):
        assert row == stream[origin.offset: origin.offset + 12]  # the offset points at the window's tokens
        # Each file holds 30 one-line documents; the window's first token lies in document `document`.
        assert origin.source == str(folder / ("a.txt" if origin.document < 30 else "b.txt"))
    assert {o.source for o in origins} == {str(folder / "a.txt"), str(folder / "b.txt")}


def test_same_source_distractors_are_the_nearest_windows_of_the_source_and_split(tiny_model_dir, tmp_path):
    from pcdrl.models.backends.base import BackendConfig
    from pcdrl.models.backends.hf import HFBackend

    tokenizer = load_tokenizer(tiny_model_dir)
    corpus = CorpusConfig(path=str(two_file_corpus(tmp_path)), max_windows=4096, heldout_fraction=0.5)
    cfg = ContinuationConfig(n_items=120, distractors="same_source", corpus=corpus)
    items = build(cfg, HFBackend(BackendConfig(model=tiny_model_dir, batch_size=16)), tokenizer, tmp_path)
    by_text = {it.options[it.answer]: it for it in items}
    assert len(items) > 60 and {it.source for it in items} == {str(tmp_path / "corpus" / n) for n in ("a.txt", "b.txt")}
    for it in items:
        assert json.loads(it.meta["option_sources"]) == [it.source] * 4
        assert len(set(it.options)) == 4 and it.options.count(it.options[it.answer]) == 1
        others = [by_text[o] for i, o in enumerate(it.options) if i != it.answer]
        assert all(o.split == it.split and o.source == it.source for o in others)  # no test answer in train
        # No window of the same source and split lies closer in the text than the farthest distractor.
        farthest = max(abs(o.meta["offset"] - it.meta["offset"]) for o in others)
        closer = [w for w in items if w.split == it.split and w.source == it.source and w is not it
                  and w not in others and abs(w.meta["offset"] - it.meta["offset"]) < farthest]
        assert not closer
    # The random mode on the same windows mixes the two files.
    mixed = build(replace(cfg, distractors="random"), EchoBackend(tokenizer), tokenizer, tmp_path)
    assert own_source_share([json.loads(it.meta["option_sources"]) for it in mixed], [it.answer for it in mixed]) < 0.5


def test_a_source_with_too_few_windows_in_a_split_is_named_with_its_count(tiny_model_dir, tmp_path):
    tokenizer = load_tokenizer(tiny_model_dir)
    corpus = CorpusConfig(path=str(two_file_corpus(tmp_path)), max_windows=4096, heldout_fraction=0.5)
    cfg = ContinuationConfig(n_items=14, distractors="same_source", corpus=corpus)
    with pytest.raises(ValueError, match=r"continuation.distractors=same_source: source '.*[ab].txt' has only [0-3] "
                                         r"distinct continuations in the (test|train) split, need 4 \(n_options\); "
                                         r"raise continuation.n_items or use distractors=random"):
        build(cfg, EchoBackend(tokenizer), tokenizer, tmp_path)


def test_an_unknown_distractor_mode_fails_at_load_with_the_choices():
    with pytest.raises(ConfigError, match=r"continuation.distractors: 'nearest' is not one of \['random', "
                                          r"'same_source'\]"):
        load_config(DataBuildConfig, "configs/data/quickstart.yaml", ["continuation.distractors=nearest"])
    with pytest.raises(ConfigError, match=r"continuation.distractors: 'nearest' is not one of"):
        ContinuationConfig(distractors="nearest")
    assert load_config(DataBuildConfig, "configs/data/quickstart.yaml").continuation.distractors == "random"


def test_nearest_same_source_ranks_by_distance_within_the_source():
    me = WindowOrigin("kjv", 3, 1000)
    others = [WindowOrigin("kjv", 0, 0), WindowOrigin("python-docs", 1, 1001), WindowOrigin("kjv", 3, 1100),
              WindowOrigin("kjv", 2, 900), WindowOrigin("kjv", 9, 5000)]
    assert nearest_same_source(me, others, 2) == [3, 2]  # equal distance: the earlier text first
    assert nearest_same_source(me, others, 9) == [3, 2, 0, 4]


def test_option_overlap_counts_shared_content_words_only():
    assert content_words("And the LORD spake unto Moses, saying") == {"lord", "spake", "moses", "saying"}
    items = [
        (["the LORD said", "a list of int", "return the value", "and the dogs"], 0, "Moses spake to the LORD"),
        (["the cat", "the sheep ran", "kill the sheep", "with the"], 3, "the sheep and the cat"),
    ]
    # True options: "lord" is shared; "with the" holds only function words. Distractors: cat, sheep, sheep.
    assert option_overlap(items) == {"true_option": 0.5, "distractor": 0.5}
    assert own_source_share([["kjv", "kjv", "kjv"], ["kjv", "python-docs", "kjv"]], [0, 2]) == 0.5


def test_summary_reads_the_labels_of_each_items_pcd_concepts(tiny_model_dir, tiny_corpus, tiny_pcd, tmp_path):
    from pcdrl.behaviors.build import continuation_summary
    from pcdrl.pcd.checkpoint import save_pcd

    tiny_pcd.concepts = {"concepts": [{"id": i, "label": "dogs and cat" if i % 2 else "red roofs"}
                                      for i in range(64)]}
    save_pcd(tiny_pcd, tmp_path / "pcd")
    tokenizer = load_tokenizer(tiny_model_dir)
    corpus = CorpusConfig(path=str(tiny_corpus), max_windows=4096, heldout_fraction=0.5)
    cfg = DataBuildConfig(subject_model=tiny_model_dir, layer=1, pcd=str(tmp_path / "pcd"), overlap_concepts=1,
                          continuation=ContinuationConfig(n_items=60, corpus=corpus))
    items = build(cfg.continuation, EchoBackend(tokenizer, reverse=False), tokenizer, tmp_path, model=tiny_model_dir)
    summary = continuation_summary(items, cfg)
    stats = summary["option_overlap"]
    # One concept per item, labelled either {dogs, cat} or {red, roofs}: a true option sharing a word with both
    # sets proves nothing, one sharing with neither must never count.
    never = sum(not (content_words(it.options[it.answer]) & {"dogs", "cat", "red", "roofs"}) for it in items)
    always = sum(content_words(it.options[it.answer]) >= {"dogs", "red"} for it in items)
    assert stats["labels_per_item"] == 1 and stats["items"] == len(items)
    assert always / len(items) <= stats["true_option_shares_word_with_labels"] <= 1 - never / len(items)
    assert 0 < stats["true_option_shares_word_with_window"] <= 1  # the echo copies the window's last words
    assert summary["distractor_sources"] == {"mode": "random", "items_with_all_distractors_from_own_source": 1.0}
