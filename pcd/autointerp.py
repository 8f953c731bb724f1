"""Auto-interp scoring: can a simulator LM, reading only a label, tell where the concept fires?

For each concept, the simulator sees held-out contexts: the concept's strongest firings and
random contexts where it is silent. Two ways to ask it, both calibrated by subtracting the
same prompt without a description (so a context that is easy anyway earns nothing):

- ``likelihood`` (default): log p(marked token | description, text before it). A label helps
  exactly when it makes the words the concept fires on more predictable: a pointwise mutual
  information, robust for small LMs that follow instructions poorly.
- ``yes_no``: log p(Yes) - log p(No) for "does the marked word match the description?".

The score is detection AUROC per concept (and the Pearson correlation with the true
activation), averaged over concepts.

Output side: the same held-out positions, scored on the token S writes next (greedy) instead of the
token where the concept fires, always by likelihood: does the label make S's next word more
predictable where the concept fires than where it is silent?
"""
from __future__ import annotations

import random

import torch

SIMULATOR_TEMPLATE = (
    "A feature of a language model is described as: {label}\n"
    "Text: {context}\n"
    "Question: does the word in [[double brackets]] match the description? Answer Yes or No.\n"
    "Answer:"
)
NO_LABEL = "(no description given)"
LIKELIHOOD_TEMPLATE = "Words described as: {label}\nText: {before}"


def simulator_prompt(label: str, context: str) -> str:
    return SIMULATOR_TEMPLATE.format(label=label, context=context)


def likelihood_prompt(label: str, before: str) -> str:
    return LIKELIHOOD_TEMPLATE.format(label=label, before=before)


def derangement(n: int, seed: int) -> list[int]:
    """A permutation with no fixed point: every concept gets another concept's label."""
    if n < 2:
        raise ValueError("the shuffled-label control needs at least 2 labelled concepts")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [order[(order.index(i) + 1) % n] for i in range(n)]


@torch.no_grad()
def continuation_and_next_logprobs(
    model, tokenizer, prompts: list[str], continuations: list[str], nexts: list[str], batch_size: int = 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(continuation | prompt) and log p(next | prompt, continuation) per row, from one pass -> ([N], [N]).

    The first is `models.scoring.continuation_logprobs`, computed the same way on the same batches, so it
    matches that function bitwise (an extra token per row would not: a longer batch changes float
    rounding). The second reads the logits the same pass already computes at each continuation's last
    token, so it scores the first token of ``next`` only: for S's next token scored by a simulator of
    S's own tokenizer family, that is the whole token.
    """
    if not len(prompts) == len(continuations) == len(nexts):
        raise ValueError(f"{len(prompts)} prompts, {len(continuations)} continuations and {len(nexts)} next tokens")
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    scores, next_scores = [], []
    for start in range(0, len(prompts), batch_size):
        pairs, next_ids = [], []
        for prompt, cont, nxt in zip(*(part[start : start + batch_size] for part in (prompts, continuations, nexts))):
            p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            c_ids = tokenizer(cont, add_special_tokens=False)["input_ids"]
            n_ids = tokenizer(nxt, add_special_tokens=False)["input_ids"]
            if not c_ids or not n_ids:
                raise ValueError(f"continuation {cont!r} or next token {nxt!r} is empty after tokenization")
            pairs.append((p_ids, c_ids))
            next_ids.append(n_ids[0])
        width = max(len(p) + len(c) for p, c in pairs)
        ids = torch.full((len(pairs), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        target = torch.zeros_like(ids, dtype=torch.bool)
        for row, (p, c) in enumerate(pairs):  # right padding: positions match an unpadded run
            ids[row, : len(p) + len(c)] = torch.tensor(p + c)
            mask[row, : len(p) + len(c)] = 1
            target[row, len(p) : len(p) + len(c)] = True
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits.float().cpu()
        token_logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        scores.append((token_logprobs * target[:, 1:]).sum(1))
        last = torch.tensor([len(p) + len(c) - 1 for p, c in pairs])
        at_end = torch.log_softmax(logits[torch.arange(len(pairs)), last], dim=-1)
        next_scores.append(at_end.gather(-1, torch.tensor(next_ids).unsqueeze(-1)).squeeze(-1))
    if not scores:
        return torch.empty(0), torch.empty(0)
    return torch.cat(scores), torch.cat(next_scores)
