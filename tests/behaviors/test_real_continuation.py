"""Same-source distractors on the real SmolLM2 and the built-in corpora (kjv and python-docs)."""
import json

import pytest

from pcdrl.behaviors.config import ContinuationConfig
from pcdrl.behaviors.continuation import build_continuation_items
from pcdrl.runtime.journal import Journal


@pytest.mark.real_model
def test_same_source_options_all_come_from_the_items_own_corpus(tmp_path):
    from pcdrl.models.backends.base import BackendConfig
    from pcdrl.models.backends.hf import HFBackend

    backend = HFBackend(BackendConfig(model="smollm2-135m-instruct", batch_size=20))
    cfg = ContinuationConfig(n_items=40, distractors="same_source")
    with Journal(tmp_path / "generations.jsonl") as journal:
        items = build_continuation_items(cfg, backend, backend.tokenizer, "smollm2-135m-instruct", 15, journal,
                                         test_fraction=0.3, seed=0)
    assert len(items) >= 36 and {it.source for it in items} == {"kjv", "python-docs"}
    by_answer = {it.options[it.answer]: it for it in items}
    for it in items:
        assert json.loads(it.meta["option_sources"]) == [it.source] * 4
        others = [by_answer[o] for i, o in enumerate(it.options) if i != it.answer]
        assert all(o.split == it.split and o.source == it.source for o in others)
        # S wrote six tokens for every window (EOS suppressed), so no option is shorter for being an ending.
        assert len(backend.tokenizer(it.behaviour, add_special_tokens=False)["input_ids"]) == 6
