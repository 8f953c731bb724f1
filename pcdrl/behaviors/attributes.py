"""The response-attribute family: S answers a chat prompt; deterministic checkers label the answer.

The encoder reads the prompt's last tokens, before S has written anything, so a good
explanation must anticipate the answer's properties from S's state.
"""
from __future__ import annotations

from pcdrl.behaviors.checkers import get_checker
from pcdrl.behaviors.config import AttributesConfig
from pcdrl.behaviors.items import Item, balance
from pcdrl.behaviors.prompts import ChatPrompt, load_prompts
from pcdrl.behaviors.subject import chat_input_ids, generate_cached


def spread(prompts: list[ChatPrompt], limit: int) -> list[ChatPrompt]:
    """At most ``limit`` prompts, taken round-robin over groups so every group stays represented."""
    if limit <= 0 or limit >= len(prompts):
        return prompts
    groups: dict[str, list[ChatPrompt]] = {}
    for p in prompts:
        groups.setdefault(p.group, []).append(p)
    chosen: list[ChatPrompt] = []
    while len(chosen) < limit:
        for members in groups.values():
            if members and len(chosen) < limit:
                chosen.append(members.pop(0))
    return chosen


def build_attribute_items(cfg: AttributesConfig, backend, tokenizer, model: str, layer: int, journal,
                          seed: int) -> tuple[list[Item], dict[str, str]]:
    checkers = [get_checker(name) for name in cfg.checkers]  # unknown names fail before S runs
    prompts = spread(load_prompts(cfg.prompts), cfg.max_prompts)
    inputs = [chat_input_ids(tokenizer, p.text) for p in prompts]
    answers = generate_cached(backend, inputs, cfg.max_new_tokens, journal, description="S answers prompts")
    items = []
    for prompt, ids, answer in zip(prompts, inputs, answers):
        read = list(range(max(0, len(ids) - cfg.read_last), len(ids)))
        for checker in checkers:
            label = checker.label(answer)
            items.append(Item(
                id=f"attributes/{checker.name}/{prompt.id}", family="attributes", attribute=checker.name,
                group=prompt.id, model=model, layer=layer, input_ids=ids, read_positions=read,
                text=prompt.text, question=checker.question, options=list(checker.options),
                answer=checker.options.index(label), behaviour=answer, source=cfg.prompts,
            ))
    kept, dropped = balance(items, cfg.balance_factor, seed)
    for attribute in sorted({it.attribute for it in kept}):
        count = sum(it.attribute == attribute for it in kept)
        if count < cfg.min_items:
            dropped[attribute] = f"only {count} items after balancing (attributes.min_items={cfg.min_items})"
    kept = [it for it in kept if it.attribute not in dropped]
    return kept, dropped
