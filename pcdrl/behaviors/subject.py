"""Running S: chat-template token ids, and greedy generation cached in a journal (resumable)."""
from __future__ import annotations

from pcdrl.runtime.journal import Journal, work_key
from pcdrl.runtime.progress import progress_bar


def chat_input_ids(tokenizer, prompt: str, chat: bool = True) -> list[int]:
    """The tokens S reads for a user prompt: its chat template with the assistant header, if it has one."""
    if chat and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(prompt + "\n")["input_ids"])


def generate_cached(
    backend,
    prompts: list[list[int]],
    max_new_tokens: int,
    journal: Journal,
    ignore_eos: bool = False,
    chunk: int = 32,
    description: str = "S generates",
) -> list[str]:
    """Greedy continuations of token-id prompts; finished ones are journalled, so a rerun resumes."""
    keys = [work_key(backend.config.model, ids, max_new_tokens, ignore_eos) for ids in prompts]
    todo = sorted({k: i for i, k in enumerate(keys) if k not in journal}.items(), key=lambda kv: kv[1])
    with progress_bar() as bar:
        task = bar.add_task(description, total=len(todo), status="")
        for start in range(0, len(todo), chunk):
            batch = todo[start : start + chunk]
            texts = backend.generate([prompts[i] for _, i in batch], max_new_tokens, ignore_eos=ignore_eos)
            journal.put_many((key, text) for (key, _), text in zip(batch, texts))
            bar.advance(task, len(batch))
    return [journal.get(k) for k in keys]
