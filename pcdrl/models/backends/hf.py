"""The default backend: a transformers model in this process, batched, with prefix KV reuse.

Scoring runs each distinct prefix once (left-padded, with explicit position ids so padding does
not shift positions) and keeps its key-value cache; every option of that prefix then runs on a
view of that cache (its tensors are shared, never copied wholesale), batched by tail length so
that no tail is padded and an option's score does not depend on which other options were asked
for. Single-token options (" Yes", " No") need only the prefix's last logits. Prefixes are
batched shortest first, so rows of like length share a forward and little of it is padding.
Prefixes in one batch that begin with the same tokens (a judge's persona and header, say) run
that shared stem once, not once per row.
"""
from __future__ import annotations

import copy
import inspect
from collections import defaultdict

import torch

from pcdrl.models.backends.base import Backend, BackendConfig, Prompt, check_options

MIN_SHARED_STEM = 8  # below this many shared tokens, running the stem separately is not worth a call


def shared_stem_length(rows: list[list[int]]) -> int:
    """Tokens every row starts with, leaving each row at least one token of its own."""
    if len(rows) < 2:
        return 0
    n = 0
    shortest = min(len(r) for r in rows) - 1
    while n < shortest and all(r[n] == rows[0][n] for r in rows):
        n += 1
    return n if n >= MIN_SHARED_STEM else 0


class HFBackend(Backend):
    def __init__(self, config: BackendConfig, model=None, tokenizer=None):
        from pcdrl.models.loading import load_model, load_tokenizer

        self.config = config
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config.model)
        self.model = model if model is not None else load_model(config.model, config.quantize, config.device, dtype=config.dtype)
        self.device = next(self.model.parameters()).device
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        # transformers renamed `past_key_values` to `cache` (5.2x); the vLLM venv pins an older release.
        self._cache_kw = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"

    @classmethod
    def from_loaded(cls, model, tokenizer, name: str, batch_size: int = 8) -> "HFBackend":
        """Wrap a model that is already in memory (S during data building, say)."""
        return cls(BackendConfig(kind="hf", model=name, batch_size=batch_size), model=model, tokenizer=tokenizer)

    # prompt_ids / option_ids come from Backend: every local tokenizer scores alike.

    def _left_pad(self, rows: list[list[int]]):
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = 1
        # Positions count real tokens only, so a padded row scores exactly like an unpadded one.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return ids.to(self.device), mask.to(self.device), positions.to(self.device)

    # ----------------------------------------------------------------- generation
    @torch.no_grad()
    def generate(self, prompts: list[Prompt], max_new_tokens: int, ignore_eos: bool = False) -> list[str]:
        outputs: list[str] = []
        for start in range(0, len(prompts), self.config.batch_size):
            rows = [self.prompt_ids(p) for p in prompts[start : start + self.config.batch_size]]
            ids, mask, _ = self._left_pad(rows)
            generated = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                min_new_tokens=max_new_tokens if ignore_eos else None,
                do_sample=False,
                pad_token_id=self.pad_id,
            )
            outputs.extend(self.tokenizer.batch_decode(generated[:, ids.shape[1] :], skip_special_tokens=True))
        return outputs

    # ----------------------------------------------------------------- scoring
    @torch.no_grad()
    def score_options(self, prefixes: list[str], options: list[list[str]]) -> list[list[float]]:
        check_options(prefixes, options)
        by_prefix: dict[str, list[tuple[int, int, list[int]]]] = defaultdict(list)
        option_cache: dict[str, list[int]] = {}
        for row, (prefix, opts) in enumerate(zip(prefixes, options)):
            for col, option in enumerate(opts):
                if option not in option_cache:
                    option_cache[option] = self.option_ids(option)
                by_prefix[prefix].append((row, col, option_cache[option]))
        results = [[0.0] * len(opts) for opts in options]
        prefix_ids = {prefix: self.prompt_ids(prefix) for prefix in by_prefix}
        # Shortest first: a batch of like-length prompts wastes little of its forward on left-padding. Results
        # are written back by (row, col), so callers see their own order.
        unique = sorted(by_prefix, key=lambda prefix: len(prefix_ids[prefix]))
        for start in range(0, len(unique), self.config.batch_size):
            chunk = unique[start : start + self.config.batch_size]
            self._score_chunk([prefix_ids[p] for p in chunk], [by_prefix[p] for p in chunk], results)
        return results

    def _run_prefixes(self, rows: list[list[int]]):
        """Forward the prefixes, keeping their cache -> (output, attention mask over the cache)."""
        stem = shared_stem_length(rows)
        if not stem:
            ids, mask, positions = self._left_pad(rows)
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
            return out, mask
        stem_ids = torch.tensor([rows[0][:stem]], device=self.device)
        stem_out = self.model(input_ids=stem_ids, use_cache=True, logits_to_keep=1)
        cache = stem_out.cache if hasattr(stem_out, "cache") else stem_out.past_key_values
        cache.batch_repeat_interleave(len(rows))
        # Each row's own tokens follow the stem; padding sits between the two and is masked out.
        ids, own_mask, own_positions = self._left_pad([r[stem:] for r in rows])
        mask = torch.cat([torch.ones(len(rows), stem, dtype=own_mask.dtype, device=self.device), own_mask], dim=1)
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=own_positions + stem, use_cache=True,
            logits_to_keep=1, **{self._cache_kw: cache},
        )
        return out, mask

    def _score_chunk(self, rows: list[list[int]], requests: list[list[tuple[int, int, list[int]]]], results) -> None:
        out, mask = self._run_prefixes(rows)
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        longer = []  # (prefix row in chunk, result row, result col, option ids, first-token score)
        for b, wanted in enumerate(requests):
            for row, col, oids in wanted:
                score = float(first[b, oids[0]])
                if len(oids) == 1:
                    results[row][col] = score
                else:
                    longer.append((b, row, col, oids, score))
        # Options of several tokens continue from a view of the prefix cache, a few rows at a time, one tail length
        # at a time: no padding, and every row attends over the same number of keys whichever other options were
        # asked for, so an option scores bit for bit alike when scored alone (true-only scoring) or with the rest.
        step = max(1, 4 * self.config.batch_size)
        prefix_cache = out.cache if hasattr(out, "cache") else out.past_key_values
        by_length = defaultdict(list)
        for request in longer:
            by_length[len(request[3])].append(request)
        for length in sorted(by_length):
            same = by_length[length]
            for start in range(0, len(same), step):
                self._score_tails(same[start : start + step], prefix_cache, mask, results)

    def _score_tails(self, requests, prefix_cache, prefix_mask, results) -> None:
        select = torch.tensor([b for b, *_ in requests], device=self.device)
        cache = _cache_view(prefix_cache)
        cache.batch_select_indices(select)
        tails = [oids[:-1] for _, _, _, oids, _ in requests]  # inputs that predict tokens 2..L
        width = max(len(t) for t in tails)
        ids = torch.full((len(requests), width), self.pad_id, dtype=torch.long)
        targets = torch.zeros_like(ids)
        tail_mask = torch.zeros_like(ids)
        for i, (_, _, _, oids, _) in enumerate(requests):
            ids[i, : len(oids) - 1] = torch.tensor(oids[:-1])
            targets[i, : len(oids) - 1] = torch.tensor(oids[1:])
            tail_mask[i, : len(oids) - 1] = 1
        ids, targets, tail_mask = ids.to(self.device), targets.to(self.device), tail_mask.to(self.device)
        past_mask = prefix_mask[select]
        positions = past_mask.sum(-1, keepdim=True) + torch.arange(width, device=self.device)
        logits = self.model(
            input_ids=ids,
            attention_mask=torch.cat([past_mask, tail_mask], dim=1),
            position_ids=positions,
            use_cache=True,
            **{self._cache_kw: cache},
        ).logits.float()
        # Log-probs only at real tail tokens (callers may still pass tails of mixed length). log_softmax works row by
        # row, so a row's values do not depend on the others (logsumexp would sum the vocabulary in another order
        # than log_softmax does, and move scores by up to 4e-5 nats on SmolLM2).
        real = tail_mask.bool()
        token_scores = torch.zeros(targets.shape, dtype=logits.dtype, device=self.device)
        token_scores[real] = torch.log_softmax(logits[real], dim=-1).gather(-1, targets[real].unsqueeze(-1)).squeeze(-1)
        totals = (token_scores * tail_mask).sum(-1)
        for i, (_, row, col, _, first_score) in enumerate(requests):
            results[row][col] = first_score + float(totals[i])

    def close(self) -> None:
        self.model = None


def _cache_view(cache):
    """A cache whose layers are shallow copies of ``cache``'s: selecting rows or appending tokens to it replaces
    the view's tensors (transformers' cache layers never write into them in place) and leaves ``cache`` as it
    was, so the prefix cache serves every batch of option tails without a deep copy of all its tensors."""
    if not hasattr(cache, "layers"):  # older transformers (the vLLM venv): no per-layer objects to share
        return copy.deepcopy(cache)
    view = copy.copy(cache)
    view.layers = [copy.copy(layer) for layer in cache.layers]
    return view
