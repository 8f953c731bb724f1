"""The generation and scoring half of `pcdrl serve`: a validated completions request in, an OpenAI-shaped
response dict out, with greedy decoding one forward pass at a time under a first-come-first-served lock.
It knows nothing about HTTP (pcdrl/models/server.py serves it); the request limits and field checks it applies
live in pcdrl/models/server_requests.py.
"""
from __future__ import annotations

import inspect
import threading
import time
import uuid
from dataclasses import dataclass

import torch

from pcdrl.models.backends.hf import HFBackend
from pcdrl.models.server_requests import (RequestError, ServerLimits, brief, count_field, flag_field, is_token_id,
                                          over_limit)


class FairLock:
    """A first-come-first-served lock. `threading.Lock` is not fair: a thread that releases it and asks again
    at once (its next decoding step) nearly always wins, so one long generation would starve everyone else."""

    def __init__(self):
        self._cond = threading.Condition()
        self._next = self._serving = 0

    def __enter__(self):
        with self._cond:
            ticket, self._next = self._next, self._next + 1
            self._cond.wait_for(lambda: self._serving == ticket)

    def __exit__(self, *exc):
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


@dataclass
class Completion:
    """A validated request: everything `CompletionEngine` needs to run it."""

    prompts: list
    ids: list[list[int]]
    max_tokens: int
    min_tokens: int
    echo: bool
    logprobs: int | None


class CompletionEngine:
    """Turns a completions request into a response dict; knows nothing about HTTP."""

    def __init__(self, backend: HFBackend, limits: ServerLimits | None = None):
        self.backend, self.tok, self.model = backend, backend.tokenizer, backend.model
        self.name = backend.config.model
        self.limits = limits or ServerLimits()
        eos = self.model.generation_config.eos_token_id
        eos = self.tok.eos_token_id if eos is None else eos
        self.eos_ids = sorted(set(eos if isinstance(eos, list) else [eos]) - {None})
        self.max_len = getattr(self.model.config.get_text_config(), "max_position_embeddings", None)
        self.vocab = self.model.get_input_embeddings().num_embeddings
        # transformers renamed `past_key_values` to `cache` (5.2x); older releases know only the old name.
        self.cache_kw = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        # Taken per forward pass, not per request: a request waits for one step of each request ahead of it,
        # never for a whole generation. Holding it per request was simpler but let one max_tokens=8180 request
        # block every client for minutes; request_timeout_s bounds what each request may spend in total.
        self.lock = FairLock()

    def complete(self, body, deadline: float | None = None) -> dict:
        req = self.parse(body)
        deadline = time.monotonic() + self.limits.request_timeout_s if deadline is None else deadline
        choices = [self._choice(i, p, r, req, deadline) for i, (p, r) in enumerate(zip(req.prompts, req.ids))]
        n_prompt, n_gen = sum(len(r) for r in req.ids), sum(c.pop("_generated") for c in choices)
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": self.name, "choices": choices,
                "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_gen, "total_tokens": n_prompt + n_gen}}

    def parse(self, body) -> Completion:
        """Check every field the server reads; anything wrong is a `RequestError` (4xx), whatever its type."""
        if not isinstance(body, dict):
            raise RequestError(f"the request body must be a JSON object, got {type(body).__name__}")
        limits = self.limits
        max_tokens = count_field(body, "max_tokens", min(16, limits.max_tokens), limits.max_tokens, "max_tokens")
        ignore_eos, echo = flag_field(body, "ignore_eos"), flag_field(body, "echo")
        min_tokens = max_tokens if ignore_eos else min(count_field(body, "min_tokens", 0, limits.max_tokens, "max_tokens"),
                                                       max_tokens)
        logprobs = None if body.get("logprobs") is None else count_field(body, "logprobs", 0, limits.max_logprobs,
                                                                    "max_logprobs")
        temperature = body.get("temperature")
        if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))):
            raise RequestError(f"temperature must be a number, got {brief(temperature)}", param="temperature")
        if temperature not in (None, 0):
            raise RequestError(f"temperature={temperature} is not supported: this server decodes greedily only; "
                               "send temperature=0", param="temperature")
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            raise RequestError(f"model must be a string, got {brief(model)}", param="model")
        if model not in (None, self.name):
            raise RequestError(f"model {brief(model)} is not served here; this server serves {self.name!r}",
                               404, "model_not_found", "model")
        for key, ok in (("stream", False), ("n", 1), ("best_of", 1), ("stop", None), ("suffix", None)):
            value = body.get(key, ok)
            if not (value is None or value is ok or (type(value) is type(ok) and value == ok) or value in ([], "")):
                raise RequestError(f"{key}={brief(value)} is not supported by this server", param=key)
        prompts = self._prompts(body.get("prompt"))
        ids = [self._tokenize(i, p) if isinstance(p, str) else p for i, p in enumerate(prompts)]
        for i, row in enumerate(ids):
            if not row:
                raise RequestError(f"prompt {i} is empty after tokenization", param="prompt")
            if len(row) > limits.max_prompt_tokens:
                raise RequestError(over_limit(f"prompt {i} has {len(row)} tokens", limits.max_prompt_tokens,
                                         "max_prompt_tokens"), param="prompt")
            if self.max_len and len(row) + max_tokens > self.max_len:
                raise RequestError(f"prompt {i} ({len(row)} tokens) + max_tokens ({max_tokens}) exceeds the "
                                   f"model's {self.max_len} positions", param="max_tokens")
        return Completion(prompts, ids, max_tokens, min_tokens, echo, logprobs)

    def _prompts(self, prompt) -> list:
        """OpenAI's four prompt shapes: str, [str], [int], [[int]]; returns a list of str or id lists."""
        shapes = ("prompt must be a string, a list of strings, a list of token ids or a list of lists of token "
                  "ids, and not empty")
        if isinstance(prompt, str):
            return [prompt]
        if not isinstance(prompt, list) or not prompt:
            raise RequestError(f"{shapes}; got {brief(prompt)}", param="prompt")
        if all(is_token_id(t) for t in prompt):
            prompt = [prompt]
        if len(prompt) > self.limits.max_prompts:
            raise RequestError(over_limit(f"prompt holds {len(prompt)} prompts", self.limits.max_prompts, "max_prompts"),
                               param="prompt")
        if all(isinstance(p, str) for p in prompt):
            return prompt
        if not all(isinstance(p, list) and p and all(is_token_id(t) for t in p) for p in prompt):
            raise RequestError(f"{shapes} (token ids are integers; true/false are not ids)", param="prompt")
        if any(not 0 <= t < self.vocab for p in prompt for t in p):
            raise RequestError(f"token ids must lie in [0, {self.vocab})", param="prompt")
        return prompt

    def _tokenize(self, index: int, text: str) -> list[int]:
        try:
            return list(self.tok(text)["input_ids"])
        except Exception as err:  # noqa: BLE001 - e.g. a lone surrogate ("\ud800") the tokenizer cannot encode
            raise RequestError(f"prompt {index} cannot be tokenized: {type(err).__name__}", param="prompt") from None

    def _choice(self, index, prompt, ids, req: Completion, deadline: float) -> dict:
        want_prompt_lp = req.echo and req.logprobs is not None
        prompt_lp, gen, gen_lp = None, [], []
        if req.max_tokens or want_prompt_lp:
            prompt_lp, gen, gen_lp = self._decode(ids, req, want_prompt_lp, deadline)
        finish = "length"
        if any(t in self.eos_ids for t in gen):  # stop text at EOS, as HF's skip_special_tokens would
            cut = next(i for i, t in enumerate(gen) if t in self.eos_ids)
            gen, gen_lp, finish = gen[:cut], gen_lp[:cut], "stop"
        prompt_text = prompt if isinstance(prompt, str) else self.tok.decode(ids)
        gen_text = self.tok.decode(gen, skip_special_tokens=True)
        choice = {"index": index, "text": (prompt_text if req.echo else "") + gen_text, "logprobs": None,
                  "finish_reason": finish, "_generated": len(gen)}
        if req.logprobs is not None:
            pieces, values, tops = [], [], []
            if req.echo:
                pieces += self._pieces(prompt, ids)
                values += prompt_lp[0]
                tops += prompt_lp[1]
            pieces += decode_pieces(self.tok, gen, skip_special=True)
            values += [lp for lp, _ in gen_lp]
            tops += [top for _, top in gen_lp]
            offsets, pos = [], 0
            for piece in pieces:
                offsets.append(pos)
                pos += len(piece)
            choice["logprobs"] = {"tokens": pieces, "token_logprobs": values, "text_offset": offsets,
                                  "top_logprobs": tops if req.logprobs > 0 else None}
        return choice

    def _decode(self, ids, req: Completion, want_prompt_lp: bool, deadline: float):
        """Greedy decoding one forward pass at a time with the KV cache, as HF's greedy `generate` does; the
        first pass also gives the echoed prompt log-probs. Returns (prompt (values, tops) or None, tokens,
        [(log-prob, top log-probs)] per token); the log-probs are of the raw logits, as vLLM reports them."""
        top_k = req.logprobs or 0
        out = self._forward(ids, None, 0 if want_prompt_lp else 1, deadline)
        prompt_lp = self._prompt_logprobs(ids, out.logits[0], top_k) if want_prompt_lp else None
        cache, logits = self._cache(out), out.logits[0, -1].float()
        gen, gen_lp = [], []
        while len(gen) < req.max_tokens:
            scores = logits
            if len(gen) < req.min_tokens:  # EOS may not come yet, as with HF's min_new_tokens
                scores = logits.clone()
                scores[self.eos_ids] = float("-inf")
            token = int(scores.argmax())
            logp = torch.log_softmax(logits, -1)
            gen.append(token)
            gen_lp.append((float(logp[token]), self._top(logp, top_k)))
            if token in self.eos_ids or len(gen) == req.max_tokens:
                break
            out = self._forward([token], cache, 1, deadline)
            cache, logits = self._cache(out), out.logits[0, -1].float()
        return prompt_lp, gen, gen_lp

    def _forward(self, ids: list[int], cache, logits_to_keep: int, deadline: float):
        with self.lock, torch.no_grad():
            if time.monotonic() > deadline:
                raise RequestError(f"the request ran past this server's time limit of request_timeout_s="
                                   f"{self.limits.request_timeout_s:g} s (waiting for its turn included); ask for "
                                   "fewer tokens or prompts, or start the server with a larger "
                                   "--limit request_timeout_s=SECONDS", 503, "timeout")
            return self.model(input_ids=torch.tensor([ids], device=self.backend.device), use_cache=True,
                              logits_to_keep=logits_to_keep, **{self.cache_kw: cache})

    @staticmethod
    def _cache(out):
        return out.cache if hasattr(out, "cache") else out.past_key_values

    def _prompt_logprobs(self, ids, logits, top_k) -> tuple[list, list]:
        values, tops = [None], [None]
        for start in range(0, len(ids) - 1, 256):  # slices, so log-softmax never copies the whole prompt x vocab
            logp = torch.log_softmax(logits[start : min(start + 256, len(ids) - 1)].float(), -1)
            targets = torch.tensor(ids[start + 1 : start + 1 + len(logp)], device=logp.device)
            values += logp.gather(1, targets[:, None])[:, 0].tolist()
            tops += [self._top(row, top_k) for row in logp]
        return values, tops

    def _top(self, logp, k):
        if k <= 0:
            return None
        values, indices = logp.topk(k)
        return {self.tok.decode([int(i)]): float(v) for v, i in zip(values, indices)}

    def _pieces(self, prompt, ids) -> list[str]:
        """Each prompt token's share of the prompt text; spans run from the previous token's end, so
        trimmed offsets (a BPE space) and zero-width special tokens still tile the text."""
        if isinstance(prompt, str) and self.tok.is_fast:
            spans = self.tok(prompt, return_offsets_mapping=True)["offset_mapping"]
            if len(spans) == len(ids):
                pieces, prev = [], 0
                for _, end in spans:
                    end = max(end, prev)
                    pieces.append(prompt[prev:end])
                    prev = end
                pieces[-1] += prompt[prev:]
                return pieces
        return decode_pieces(self.tok, ids, skip_special=False)


def decode_pieces(tok, ids, skip_special: bool) -> list[str]:
    """Token strings by incremental decoding, so they concatenate to the decoded text."""
    pieces, prev = [], ""
    for i in range(len(ids)):
        text = tok.decode(ids[: i + 1], skip_special_tokens=skip_special)
        pieces.append(text[len(prev):] if text.startswith(prev) else tok.decode(ids[i : i + 1]))
        prev = text
    return pieces
