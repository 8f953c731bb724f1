"""A small OpenAI-compatible completions server around an `HFBackend`, for users without vLLM.

    python -m models.server --model smollm2-135m-instruct --port 8000

Then ``BackendConfig(kind="http", model="smollm2-135m-instruct", base_url="http://127.0.0.1:8000/v1")``.
It serves ``GET /v1/models`` and ``POST /v1/completions`` with greedy decoding only (temperature 0;
a missing temperature means 0),
``echo`` + ``logprobs`` (prompt log-probs from one forward pass of the whole prompt), and vLLM's
``min_tokens`` / ``ignore_eos``. Requests, and the prompts within one, run one at a time: the
model is shared, the machines this targets have few cores, and unpadded rows keep it simple. Token strings tile the echoed text exactly (special tokens such as
BOS are zero-width), so ``text_offset`` indexes into ``text`` as OpenAI documents.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

from models.backends.base import BackendConfig
from models.backends.hf import HFBackend


class RequestError(Exception):
    def __init__(self, message: str, status: int = 400, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.kind = status, kind


class CompletionEngine:
    """Turns a completions request into a response dict; knows nothing about HTTP."""

    def __init__(self, backend: HFBackend):
        self.backend, self.tok, self.model = backend, backend.tokenizer, backend.model
        self.name = backend.config.model
        eos = self.model.generation_config.eos_token_id
        eos = self.tok.eos_token_id if eos is None else eos
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        self.max_len = getattr(self.model.config.get_text_config(), "max_position_embeddings", None)
        self.lock = threading.Lock()

    def complete(self, body: dict) -> dict:
        prompts = self._prompts(body.get("prompt"))
        max_tokens = _int(body, "max_tokens", 16)
        min_tokens = max_tokens if body.get("ignore_eos") else min(_int(body, "min_tokens", 0), max_tokens)
        logprobs = body.get("logprobs")
        if logprobs is not None and (not isinstance(logprobs, int) or isinstance(logprobs, bool) or logprobs < 0):
            raise RequestError("logprobs must be a non-negative integer or null")
        if body.get("temperature", 0) not in (0, 0.0, None):
            raise RequestError(f"temperature={body['temperature']} is not supported: this server decodes "
                               "greedily only; send temperature=0")
        if body.get("model") not in (None, self.name):
            raise RequestError(f"model {body['model']!r} is not served here; this server serves {self.name!r}",
                               404, "model_not_found")
        for key, ok in (("stream", False), ("n", 1), ("best_of", 1), ("stop", None), ("suffix", None)):
            if body.get(key, ok) not in (ok, [], ""):
                raise RequestError(f"{key}={body[key]!r} is not supported by this server")
        ids = [self.tok(p)["input_ids"] if isinstance(p, str) else p for p in prompts]
        for row in ids:
            if not row:
                raise RequestError("a prompt is empty after tokenization")
            if self.max_len and len(row) + max_tokens > self.max_len:
                raise RequestError(f"prompt ({len(row)} tokens) + max_tokens ({max_tokens}) exceeds the "
                                   f"model's {self.max_len} positions")
        with self.lock, torch.no_grad():
            choices = [self._choice(i, p, r, max_tokens, min_tokens, bool(body.get("echo")), logprobs)
                       for i, (p, r) in enumerate(zip(prompts, ids))]
        n_prompt, n_gen = sum(len(r) for r in ids), sum(c.pop("_generated") for c in choices)
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": self.name, "choices": choices,
                "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_gen, "total_tokens": n_prompt + n_gen}}

    def _prompts(self, prompt) -> list:
        """OpenAI's four prompt shapes: str, [str], [int], [[int]]; returns a list of str or id lists."""
        if isinstance(prompt, str):
            return [prompt]
        if isinstance(prompt, list) and prompt:
            if all(isinstance(p, str) for p in prompt):
                return prompt
            if all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
                prompt = [prompt]
            if all(isinstance(p, list) and p and all(isinstance(t, int) for t in p) for p in prompt):
                vocab = self.model.get_input_embeddings().num_embeddings
                if any(not 0 <= t < vocab for p in prompt for t in p):
                    raise RequestError(f"token ids must lie in [0, {vocab})")
                return prompt
        raise RequestError("prompt must be a string, a list of strings, a list of token ids or a list of "
                           "lists of token ids, and not empty")

    def _choice(self, index, prompt, ids, max_tokens, min_tokens, echo, logprobs) -> dict:
        # One forward over the prompt gives the echoed log-probs and, for max_tokens=1 (the scoring
        # request), the single greedy token, so scoring costs one pass instead of two.
        need_prompt_pass = echo and logprobs is not None or max_tokens == 1
        prompt_lp = self._prompt_pass(ids, min_tokens, logprobs or 0) if need_prompt_pass else None
        if max_tokens == 0:
            gen, gen_lp = [], []
        elif max_tokens == 1:
            gen, gen_lp = [prompt_lp["next"]], [prompt_lp["next_lp"]]
        else:
            gen, gen_lp = self._generate(ids, max_tokens, min_tokens, logprobs or 0)
        finish = "length"
        if any(t in self.eos_ids for t in gen):  # stop text at EOS, as HF's skip_special_tokens would
            cut = next(i for i, t in enumerate(gen) if t in self.eos_ids)
            gen, gen_lp, finish = gen[:cut], gen_lp[:cut], "stop"
        prompt_text = prompt if isinstance(prompt, str) else self.tok.decode(ids)
        gen_text = self.tok.decode(gen, skip_special_tokens=True)
        choice = {"index": index, "text": (prompt_text if echo else "") + gen_text, "logprobs": None,
                  "finish_reason": finish, "_generated": len(gen)}
        if logprobs is not None:
            pieces, values, tops = [], [], []
            if echo:
                pieces += self._pieces(prompt, ids)
                values += prompt_lp["values"]
                tops += prompt_lp["tops"]
            pieces += _decode_pieces(self.tok, gen, skip_special=True)
            values += [lp for lp, _ in gen_lp]
            tops += [top for _, top in gen_lp]
            offsets, pos = [], 0
            for piece in pieces:
                offsets.append(pos)
                pos += len(piece)
            choice["logprobs"] = {"tokens": pieces, "token_logprobs": values, "text_offset": offsets,
                                  "top_logprobs": tops if logprobs > 0 else None}
        return choice

    def _prompt_pass(self, ids, min_tokens, top_k) -> dict:
        logp = torch.log_softmax(self.model(input_ids=torch.tensor([ids], device=self.backend.device)).logits[0].float(), -1)
        values = [None] + [float(logp[i - 1, t]) for i, t in enumerate(ids) if i > 0]
        tops = [None] + [self._top(logp[i - 1], top_k) for i in range(1, len(ids))]
        last = logp[-1].clone()
        if min_tokens > 0:  # EOS may not come first, as with HF's min_new_tokens
            last[list(self.eos_ids)] = float("-inf")
        nxt = int(last.argmax())
        return {"values": values, "tops": tops, "next": nxt, "next_lp": (float(logp[-1, nxt]), self._top(logp[-1], top_k))}

    def _generate(self, ids, max_tokens, min_tokens, top_k):
        out = self.model.generate(input_ids=torch.tensor([ids], device=self.backend.device), max_new_tokens=max_tokens,
                                  min_new_tokens=min_tokens or None, do_sample=False, pad_token_id=self.backend.pad_id,
                                  output_logits=True, return_dict_in_generate=True)
        gen = out.sequences[0, len(ids):].tolist()
        # Raw logits, not the processed scores: min_tokens sets EOS to -inf there, vLLM reports raw ones.
        lps = [torch.log_softmax(step[0].float(), -1) for step in out.logits]
        return gen, [(float(lp[t]), self._top(lp, top_k)) for t, lp in zip(gen, lps)]

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
        return _decode_pieces(self.tok, ids, skip_special=False)


def _decode_pieces(tok, ids, skip_special: bool) -> list[str]:
    """Token strings by incremental decoding, so they concatenate to the decoded text."""
    pieces, prev = [], ""
    for i in range(len(ids)):
        text = tok.decode(ids[: i + 1], skip_special_tokens=skip_special)
        pieces.append(text[len(prev):] if text.startswith(prev) else tok.decode(ids[i : i + 1]))
        prev = text
    return pieces


def _int(body: dict, key: str, default: int) -> int:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RequestError(f"{key} must be a non-negative integer, got {value!r}")
    return value


class _Handler(BaseHTTPRequestHandler):
    server: "CompletionServer"

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path.rstrip("/") == "/v1/models":
            name = self.server.engine.name
            return self._send(200, {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "pcd-rl"}]})
        self._error(RequestError(f"no route GET {self.path}; try /v1/models", 404, "not_found"))

    def do_POST(self):  # noqa: N802
        self.server.request_count += 1
        if self.path.rstrip("/") != "/v1/completions":
            return self._error(RequestError(f"no route POST {self.path}; try /v1/completions", 404, "not_found"))
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
        except ValueError as err:
            return self._error(RequestError(f"the request body is not valid JSON: {err}"))
        try:
            if not isinstance(body, dict):
                raise RequestError("the request body must be a JSON object")
            self._send(200, self.server.engine.complete(body))
        except RequestError as err:
            self._error(err)
        except Exception as err:  # noqa: BLE001 - report it to the client rather than drop the connection
            self.log_error("completion failed: %r", err)
            self._error(RequestError(f"internal error: {err!r}", 500, "server_error"))

    def _error(self, err: RequestError):
        self._send(err.status, {"error": {"message": str(err), "type": err.kind}})

    def _send(self, status: int, payload: dict):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):  # quiet by default; errors still go through log_error
        if self.server.verbose:
            super().log_message(fmt, *args)

    def log_error(self, fmt, *args):
        super().log_message(fmt, *args)


class CompletionServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, engine: CompletionEngine, verbose: bool = False):
        super().__init__(address, _Handler)
        self.engine, self.verbose, self.request_count = engine, verbose, 0


def serve_in_thread(backend_or_model: HFBackend | str, port: int = 0, host: str = "127.0.0.1"):
    """Start a server on a background thread; returns ``(server, base_url)``. Stop with ``server.shutdown()``."""
    backend = backend_or_model
    if isinstance(backend, str):
        backend = HFBackend(BackendConfig(kind="hf", model=backend))
    server = CompletionServer((host, port), CompletionEngine(backend))
    threading.Thread(target=server.serve_forever, daemon=True, name="completions-server").start()
    return server, f"http://{host}:{server.server_address[1]}/v1"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="offline name, local folder or hub id")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--quantize", default="none", choices=["none", "int8", "bnb8", "bnb4"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    backend = HFBackend(BackendConfig(kind="hf", model=args.model, quantize=args.quantize, device=args.device))
    server = CompletionServer((args.host, args.port), CompletionEngine(backend), verbose=args.verbose)
    print(f"serving {args.model} on http://{args.host}:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
