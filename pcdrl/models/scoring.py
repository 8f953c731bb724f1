"""Score text with a causal LM: next-token log-probs of candidate answers, batched.

Judges and simulators never parse generated text: small LMs answer "No" to everything, so
they read the probability the model puts on each option instead.
"""
from __future__ import annotations

import torch


def candidate_token_ids(tokenizer, candidates: list[str]) -> list[int]:
    """The first token of each candidate string (e.g. " Yes", " No"); they must differ."""
    ids = [tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in candidates]
    if len(set(ids)) != len(ids):
        raise ValueError(f"candidates {candidates} share a first token; use answers that start differently")
    return ids


@torch.no_grad()
def next_token_logprobs(model, tokenizer, prompts: list[str], candidates: list[str], batch_size: int = 16) -> torch.Tensor:
    """log p(candidate first token | prompt) for every prompt -> [N, C], normalised over the vocabulary."""
    ids = candidate_token_ids(tokenizer, candidates)
    device = next(model.parameters()).device
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # the last position is then every row's next-token position
    try:
        rows = []
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            logits = model(
                input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device), use_cache=False
            ).logits[:, -1].float()
            rows.append(torch.log_softmax(logits, dim=-1)[:, ids].cpu())
    finally:
        tokenizer.padding_side = previous_side
    return torch.cat(rows) if rows else torch.empty(0, len(candidates))


@torch.no_grad()
def generate_greedy(model, tokenizer, prompts: list[str], max_new_tokens: int = 16, batch_size: int = 8) -> list[str]:
    """Greedy continuations (new text only), batched with left padding."""
    device = next(model.parameters()).device
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    outputs: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            generated = model.generate(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            new_tokens = generated[:, batch["input_ids"].shape[1] :]
            outputs.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = previous_side
    return outputs


def continuation_logprobs(model, tokenizer, prompts: list[str], continuations: list[str], batch_size: int = 16) -> torch.Tensor:
    """Sum of log p(continuation tokens | prompt) for each (prompt, continuation) pair -> [N].

    Prompt and continuation are tokenized separately and joined, so the continuation's tokens
    are the same whatever prompt precedes them.
    """
    return continuation_and_next_logprobs(model, tokenizer, prompts, continuations, None, batch_size)[0]


@torch.no_grad()
def continuation_and_next_logprobs(
    model, tokenizer, prompts: list[str], continuations: list[str], nexts: list[str] | None, batch_size: int = 16
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log p(continuation | prompt) and, with ``nexts``, log p(next | prompt, continuation) per row -> ([N], [N]).

    Both come from one pass. The second reads the logits that pass already computes at each
    continuation's last token (an extra token per row would lengthen the batch and change float
    rounding), so it scores the first token of ``next`` only: for S's next token scored by a
    simulator of S's own tokenizer family, that is the whole token.
    """
    if len(prompts) != len(continuations) or (nexts is not None and len(nexts) != len(prompts)):
        raise ValueError(f"{len(prompts)} prompts, {len(continuations)} continuations"
                         + (f" and {len(nexts)} next tokens" if nexts is not None else ""))
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    scores, next_scores = [], []
    for start in range(0, len(prompts), batch_size):
        pairs, next_ids = [], []
        for row in range(start, min(start + batch_size, len(prompts))):
            p_ids = tokenizer(prompts[row], add_special_tokens=False)["input_ids"]
            c_ids = tokenizer(continuations[row], add_special_tokens=False)["input_ids"]
            if not c_ids:
                raise ValueError(f"continuation {continuations[row]!r} is empty after tokenization")
            if nexts is not None:
                n_ids = tokenizer(nexts[row], add_special_tokens=False)["input_ids"]
                if not n_ids:
                    raise ValueError(f"next token {nexts[row]!r} is empty after tokenization")
                next_ids.append(n_ids[0])
            pairs.append((p_ids, c_ids))
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
        if nexts is not None:
            last = torch.tensor([len(p) + len(c) - 1 for p, c in pairs])
            at_end = torch.log_softmax(logits[torch.arange(len(pairs)), last], dim=-1)
            next_scores.append(at_end.gather(-1, torch.tensor(next_ids).unsqueeze(-1)).squeeze(-1))
    if not scores:
        return torch.empty(0), (torch.empty(0) if nexts is not None else None)
    return torch.cat(scores), (torch.cat(next_scores) if nexts is not None else None)
