"""The path of every LLM call a run makes: response cache, budget, the call, accounting.

A task asks ``LLMCalls.generate`` for its row's completions. Generations already in the run's
response cache are served from it (they cost nothing and use no rate-limit budget); only the
missing ones are requested, and each answer is stored as soon as it arrives, so a crash loses at
most the calls in flight and a re-run pays only for what was never answered.

Cache keys tie each sample to its row: ``owner=(task name, row id)`` (the row's lineage id,
stable across re-runs and resumes) makes identical prompts in different rows separate samples;
``owner=None`` shares answers between identical requests (``Task.cache_scope="prompt"``).

An answer without text is a failed call (``synthflow.models.callpath.answers``): the row fails with
``LLMEmptyAnswerError``. Its generations that do have text are cached; a re-run asks for the rest.

When a budget (``max_cost``, ``max_tokens``) is reached, no new call starts: ``BudgetExceeded`` is
raised to the task, the calls in flight finish, and ``on_exhausted`` lets the engine stop its
sources so the run ends with what it has.

An LLM in offline batch mode (``use_offline_batch_generation=True``) gets its missing generations
through the run's ``OfflineBatches`` (``synthflow.models.callpath.batches``) instead of a call:
the answers are cached, checked and counted the same way, at the provider's batch price.

A step whose ``process`` runs in worker threads (``executor="thread"``) reaches this path through
``ThreadCalls`` (``synthflow.pipeline._thread_calls``), which makes each call here, on the run's
event loop; only a local model's generation goes back to the worker thread (``run_model``).

When a cache write finds the disk full, the calls stop: that call and every later one raise
``DiskFullError`` at once (no new request starts), saying which file is full, how many answers
received could not be stored (lost: a re-run pays for them again) and that the run resumes
once space is freed.

Embedding models take the same path (``LLMCalls.embed``): a cacheable model's vectors are cached
per text (an embedding is the same whichever row asks), and its calls count in the step's stats
and against the budget.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import orjson

from synthflow.errors import (
    BudgetExceeded,
    DiskFullError,
    LLMBatchRequestError,
    LLMEmptyAnswerError,
    LLMError,
)
from synthflow.models.callpath.answers import require_answers
from synthflow.models.callpath.batches import OfflineBatches, uses_offline_batches
from synthflow.models.callpath.cache import CachedGeneration, ResponseCache
from synthflow.models.callpath.pricing import Price, batch_price, cost_at, price_of
from synthflow.models.callpath.structured import StructuredOutputLLM
from synthflow.models.llms.base import LLM, ChatType, GenerateOutput, Usage
from synthflow.models.llms.magpie import user_turn_of

if TYPE_CHECKING:
    from synthflow.models.embeddings.base import Embeddings, Vector

MAX_LATENCY_SAMPLES = 10_000

ModelCall = Callable[[], Awaitable[GenerateOutput]]
RunModel = Callable[[ModelCall], Awaitable[GenerateOutput]]
"""Where a model's generation runs, given the call to make (``LLMCalls.generate(run_model=)``)."""


@dataclass
class LLMCallStats:
    """LLM calls of one step. ``requests`` counts calls sent (retries inside them are in
    ``retries``); ``cache_hits`` counts generations served from the response cache;
    ``in_flight`` the calls sent and not yet answered (for live progress)."""

    requests: int = 0
    in_flight: int = 0
    batched: int = 0
    """Of ``requests``, those answered through offline batches (at the batch price)."""
    cache_hits: int = 0
    failures: int = 0
    retries: int = 0
    rate_limited: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    latencies: list[float] = field(default_factory=list, repr=False)

    def record_latency(self, seconds: float) -> None:
        if len(self.latencies) < MAX_LATENCY_SAMPLES:
            self.latencies.append(seconds)
        else:  # keep a spread: overwrite in a fixed stride instead of growing
            self.latencies[self.requests % MAX_LATENCY_SAMPLES] = seconds

    def add_cost(self, cost: float | None) -> None:
        if cost is not None:
            self.cost = (self.cost or 0.0) + cost

    def latency_percentiles(self) -> dict[str, float]:
        if not self.latencies:
            return {}
        ordered = sorted(self.latencies)
        last = len(ordered) - 1
        return {f"p{q}": ordered[min(last, len(ordered) * q // 100)] for q in (50, 90, 99)}

    def brief(self) -> str:
        parts = [f"req={self.requests}", f"hits={self.cache_hits}"]
        if self.batched:
            parts.append(f"batched={self.batched}")
        if self.rate_limited:
            parts.append(f"429s={self.rate_limited}")
        if self.retries:
            parts.append(f"retries={self.retries}")
        if self.failures:
            parts.append(f"failed={self.failures}")
        parts.append(f"tok={self.input_tokens}+{self.output_tokens}")
        if self.cost is not None:
            parts.append(f"${self.cost:.4f}")
        p = self.latency_percentiles()
        if p:
            parts.append(f"p50={p['p50']:.2f}s p99={p['p99']:.2f}s")
        return " ".join(parts)

    @classmethod
    def total(cls, parts: list[LLMCallStats]) -> LLMCallStats:
        """The run's figures: every step's counters added up, latencies pooled."""
        out = cls()
        for part in parts:
            out.requests += part.requests
            out.in_flight += part.in_flight
            out.batched += part.batched
            out.cache_hits += part.cache_hits
            out.failures += part.failures
            out.retries += part.retries
            out.rate_limited += part.rate_limited
            out.input_tokens += part.input_tokens
            out.output_tokens += part.output_tokens
            out.add_cost(part.cost)
            out.latencies.extend(part.latencies)
        return out

    def as_dict(self) -> dict[str, Any]:
        # in_flight is a live gauge (0 once the run is over): not part of the record
        out = {k: v for k, v in asdict(self).items() if k not in ("latencies", "in_flight")}
        out["latency"] = self.latency_percentiles()
        return out


@dataclass
class Budget:
    max_cost: float | None = None
    max_tokens: int | None = None
    cost: float = 0.0
    tokens: int = 0

    def charge(self, cost: float | None, tokens: int) -> None:
        self.cost += cost or 0.0
        self.tokens += tokens

    def refusal(self, cost: float | None, tokens: int) -> str | None:
        """Why spending ``cost`` and ``tokens`` more would break the budget, or None."""
        if self.max_cost is not None and cost is not None and self.cost + cost > self.max_cost:
            return (
                f"budget reached: an offline batch estimated at ${cost:.4f} would take the cost "
                f"past max_cost ${self.max_cost:.4f} (${self.cost:.4f} spent); it was not sent"
            )
        if self.max_tokens is not None and self.tokens + tokens > self.max_tokens:
            return (
                f"budget reached: an offline batch of about {tokens} tokens would take the run "
                f"past max_tokens {self.max_tokens} ({self.tokens} spent); it was not sent"
            )
        return self.exhausted()

    def exhausted(self) -> str | None:
        """Why the budget is spent, or None."""
        if self.max_cost is not None and self.cost >= self.max_cost:
            return f"budget reached: cost ${self.cost:.4f} >= max_cost ${self.max_cost:.4f}"
        if self.max_tokens is not None and self.tokens >= self.max_tokens:
            return f"budget reached: {self.tokens} tokens >= max_tokens {self.max_tokens}"
        return None


class CallPath(Protocol):
    """Where a bound step sends its model calls: the run's ``LLMCalls`` or, for a step that
    makes them in worker threads, ``ThreadCalls``, which makes them on the run's loop."""

    async def generate(
        self,
        llm: LLM,
        messages: ChatType,
        num_generations: int,
        stats: LLMCallStats,
        *,
        use_cache: bool = True,
        owner: Sequence[Any] | None = None,
        task: str = "",
        user_turn: bool = False,
    ) -> GenerateOutput: ...

    async def embed(
        self,
        model: Embeddings,
        texts: Sequence[str],
        stats: LLMCallStats,
        *,
        use_cache: bool = True,
    ) -> list[Vector]: ...


@runtime_checkable
class CallsUser(Protocol):
    """A step whose model calls go through a run's ``LLMCalls`` (tasks, ``EmbeddingGeneration``):
    the engine binds them before the run, and unbinds them after it or in a worker process."""

    def bind_calls(self, calls: CallPath | None, stats: LLMCallStats) -> None: ...

    def uses_response_cache(self) -> bool:
        """Whether this step's calls may be served from (and stored in) the response cache."""
        ...


class LLMCalls:
    def __init__(
        self,
        cache: ResponseCache | None,
        budget: Budget | None = None,
        prices: Mapping[str, Price] | None = None,
        on_exhausted: Callable[[str], None] | None = None,
        run_dir: Path | None = None,
    ) -> None:
        self.cache = cache
        self.budget = budget
        self.prices = dict(prices or {})
        self._on_exhausted = on_exhausted
        self._prices_by_model: dict[str, Price | None] = {}
        self.lost_answers = 0
        """Generations received that could not be stored because the disk was full."""
        self._disk_full: DiskFullError | None = None
        self.batches: OfflineBatches | None = None
        """The run's offline batches; None outside a run (no run directory to keep them in)."""
        if run_dir is not None:
            self.batches = OfflineBatches(
                run_dir,
                price=lambda llm: batch_price(
                    self._price(llm.model_name), getattr(llm, "provider", "")
                ),
                budget_refusal=self._budget_refusal,
                on_exhausted=on_exhausted,
                store=self._store_answers,
            )

    def _budget_refusal(self, cost: float | None, tokens: int) -> str | None:
        return None if self.budget is None else self.budget.refusal(cost, tokens)

    def _store_answers(self, answers: list[tuple[list[str], GenerateOutput]]) -> None:
        """File a batch's answers (each with the cache keys of its generations) in the cache,
        in one transaction."""
        if self.cache is None:
            return
        items = [
            (key, entry)
            for keys, output in answers
            for key, entry in zip(keys, _split(output), strict=False)
            if entry.text is not None
        ]
        if self._disk_full is not None:
            self.lost_answers += len(items)
            raise self._stopped()
        try:
            self.cache.put_many(items)
        except DiskFullError as exc:
            self.lost_answers += len(items)
            raise self._stopped(exc.path) from exc

    def _price(self, model: str) -> Price | None:
        if model not in self._prices_by_model:
            self._prices_by_model[model] = price_of(model, self.prices)
        return self._prices_by_model[model]

    async def generate(
        self,
        llm: LLM,
        messages: ChatType,
        num_generations: int,
        stats: LLMCallStats,
        *,
        use_cache: bool = True,
        owner: Sequence[Any] | None = None,
        task: str = "",
        user_turn: bool = False,
        run_model: RunModel | None = None,
    ) -> GenerateOutput:
        """The ``num_generations`` completions of ``messages``, each with text.

        ``run_model``: where the model's generation runs (a local model's, back in the worker
        thread of a step with ``executor="thread"``); None: here. Offline batches never take it.

        ``user_turn``: Magpie's next *user* turn of ``messages``, from a raw completion
        (``UserTurnWriter.agenerate_user_turn``), instead of the assistant's answer.

        ``owner`` is whom the samples belong to in the cache, ``(task name, row id)``; None
        shares them between identical requests. Raises ``LLMEmptyAnswerError`` when some
        generation has no text (those with text are cached), ``DiskFullError`` once the cache's
        disk is full, ``BudgetExceeded`` once the budget is spent.
        """
        if self._disk_full is not None:
            raise self._stopped()
        if self.budget is not None and (reason := self.budget.exhausted()):
            raise BudgetExceeded(reason)
        cache = self.cache if use_cache and llm.cacheable else None
        keys: list[str] = []
        hits: dict[str, CachedGeneration] = {}
        missing = list(range(num_generations))
        batched = uses_offline_batches(llm)
        if batched and self.batches is None:
            raise LLMError(
                f"{type(llm).__name__}(use_offline_batch_generation=True) sends its requests as "
                "batches from a pipeline run: run it in a pipeline, or turn batching off"
            )
        if cache is not None or batched:  # a batch request's id is its cache key
            identity = llm.cache_identity()
            keys = ResponseCache.keys(
                f"{identity.provider}:user-turn" if user_turn else identity.provider,
                identity.model,
                messages,
                identity.generation_kwargs,
                identity.schema,
                missing,
                endpoint=identity.endpoint,
                owner=owner,
            )
            hits = cache.get_many(keys) if cache is not None else {}
            missing = [i for i, key in enumerate(keys) if key not in hits]
            stats.cache_hits += num_generations - len(missing)
            if hits and self._price(llm.model_name) is not None:
                stats.add_cost(0.0)  # known to be free, rather than of unknown cost
        if not missing:
            return _from_cache([hits[key] for key in keys])

        started = time.monotonic()
        stats.requests += 1
        stats.in_flight += 1
        try:
            if user_turn:  # a raw completion: never part of a provider batch
                batched = False
                write = user_turn_of(llm)
                if run_model is None:
                    fresh = await write(messages, num_generations=len(missing))
                else:
                    fresh = await run_model(partial(write, messages, num_generations=len(missing)))
            elif batched:
                assert self.batches is not None
                stats.batched += 1
                try:
                    fresh = await self.batches.answer(
                        llm, task, messages, [keys[i] for i in missing]
                    )
                except LLMBatchRequestError:
                    if not getattr(llm, "offline_batch_generation_fallback", False):
                        raise
                    # Asked for: the lost request again as an ordinary call, at full price.
                    batched = False
                    stats.batched -= 1
                    direct = llm.model_copy(update={"use_offline_batch_generation": False})
                    fresh = await direct.agenerate(messages, num_generations=len(missing))
                reask = getattr(llm, "_ask_once", None)
                if isinstance(llm, StructuredOutputLLM) and reask is not None:
                    # a structured answer that doesn't fit is re-asked directly
                    fresh = await llm.enforce_schema(messages, fresh, reask)
            elif run_model is None:
                fresh = await llm.agenerate(messages, num_generations=len(missing))
            else:
                fresh = await run_model(
                    partial(llm.agenerate, messages, num_generations=len(missing))
                )
            fresh = require_answers(fresh, len(missing), who=type(llm).__name__)
        except Exception as exc:
            stats.failures += 1
            if isinstance(exc, LLMError):  # what the failed call cost still counts
                stats.retries += exc.retries
                stats.rate_limited += exc.rate_limited
                if isinstance(exc.usage, Usage):
                    self._charge(llm, exc.usage, stats, batched=batched)
            if isinstance(exc, LLMEmptyAnswerError) and isinstance(exc.output, GenerateOutput):
                # The generations that have text are paid answers: keep them, so that a
                # re-run asks only for the missing ones.
                self._store(cache, keys, missing, exc.output)
            raise
        finally:
            stats.in_flight -= 1
            if not batched:  # hours in a provider's queue say nothing about latency
                stats.record_latency(time.monotonic() - started)
        stats.retries += fresh.retries
        stats.rate_limited += fresh.rate_limited
        self._charge(llm, fresh.usage, stats, batched=batched)
        self._store(cache, keys, missing, fresh)
        if not hits:
            return fresh
        return _assemble(keys, hits, missing, fresh)

    def _store(
        self,
        cache: ResponseCache | None,
        keys: list[str],
        missing: list[int],
        output: GenerateOutput,
    ) -> None:
        """Cache ``output``'s generations (those with text) under the keys of the ``missing``
        indices, in order. Once the disk is full, count them lost and raise ``DiskFullError``."""
        if cache is None:
            return
        entries = _split(output)
        items = [
            (keys[i], entry)
            for i, entry in zip(missing, entries, strict=False)
            if entry.text is not None
        ]
        self._store_entries(cache, items)

    def _store_entries(
        self, cache: ResponseCache, items: list[tuple[str, CachedGeneration]]
    ) -> None:
        if self._disk_full is not None:  # stopped: answers still arriving can't be kept
            self.lost_answers += len(items)
            raise self._stopped()
        try:
            cache.put_many(items)
        except DiskFullError as exc:
            self.lost_answers += len(items)
            raise self._stopped(exc.path) from exc

    def _stopped(self, path: str | None = None) -> DiskFullError:
        """The error every call raises once the cache's disk is full. The first one raised is
        the one a run reports: later losses update its count too."""
        first = self._disk_full
        path = first.path if first is not None else (path or "")
        lost = self.lost_answers
        message = (
            f"the disk is full: no space left to write {path}; no new LLM requests are sent, "
            f"and {lost} answer{'' if lost == 1 else 's'} received could not be stored (lost: "
            "a re-run pays for them again). Free space on that disk and run the pipeline again "
            "to resume: answers already stored are not paid for again"
        )
        error = DiskFullError(message, path=path)
        if first is None:
            self._disk_full = error
        else:
            first.args = (message,)
        return error

    async def embed(
        self,
        model: Embeddings,
        texts: Sequence[str],
        stats: LLMCallStats,
        *,
        use_cache: bool = True,
    ) -> list[Vector]:
        """One vector per text, in order: cached ones from the response cache (a cacheable
        model's), the rest in one call of ``model.aencode_counted``, stored as they come."""
        if self._disk_full is not None:
            raise self._stopped()
        if self.budget is not None and (reason := self.budget.exhausted()):
            raise BudgetExceeded(reason)
        cache = self.cache if use_cache and model.cacheable else None
        keys: list[str] = []
        found: dict[str, CachedGeneration] = {}
        missing = list(range(len(texts)))
        if cache is not None:
            identity = model.cache_identity()
            keys = [
                ResponseCache.key(
                    identity.provider,
                    identity.model,
                    [{"content": text}],
                    identity.settings,
                    None,
                    0,
                    endpoint=identity.endpoint,
                )
                for text in texts
            ]
            found = cache.get_many(keys)
            missing = [i for i, key in enumerate(keys) if key not in found]
            stats.cache_hits += len(texts) - len(missing)
        vectors: list[Vector] = [
            orjson.loads(found[key].text or "null") for key in keys if key in found
        ]
        if not missing:
            return vectors
        started = time.monotonic()
        try:
            output = await model.aencode_counted([texts[i] for i in missing])
        except Exception as exc:
            stats.requests += 1
            stats.failures += 1
            if isinstance(exc, LLMError):  # what the failed call cost still counts
                stats.retries += exc.retries
                stats.rate_limited += exc.rate_limited
                if isinstance(exc.usage, Usage):
                    self._charge(model, exc.usage, stats)
            raise
        finally:
            stats.record_latency(time.monotonic() - started)
        stats.requests += output.requests
        stats.retries += output.retries
        stats.rate_limited += output.rate_limited
        self._charge(model, Usage(output.input_tokens, 0), stats)
        fresh = output.vectors
        if len(fresh) != len(missing):
            raise LLMError(
                f"{type(model).__name__} returned {len(fresh)} embeddings for {len(missing)} texts"
            )
        if cache is not None:
            share = output.input_tokens // len(missing)
            self._store_entries(
                cache,
                [
                    (keys[i], CachedGeneration(orjson.dumps(v).decode(), input_tokens=share))
                    for i, v in zip(missing, fresh, strict=True)
                ],
            )
        if not found:
            return fresh
        merged: list[Vector] = []
        cached, new = iter(vectors), iter(fresh)
        for key in keys:
            merged.append(next(cached) if key in found else next(new))
        return merged

    def _charge(
        self,
        llm: LLM | Embeddings,
        usage: Usage,
        stats: LLMCallStats,
        *,
        batched: bool = False,
    ) -> None:
        """Count billed tokens and their cost (at the batch price for a batch's answers),
        against the budget too."""
        stats.input_tokens += usage.input_tokens
        stats.output_tokens += usage.output_tokens
        price = self._price(llm.model_name)
        if batched:
            price = batch_price(price, getattr(llm, "provider", ""))
        cost = cost_at(price, usage)
        stats.add_cost(cost)
        if self.budget is not None:
            self.budget.charge(cost, usage.input_tokens + usage.output_tokens)
            reason = self.budget.exhausted()
            if reason and self._on_exhausted is not None:
                self._on_exhausted(reason)


def _split(output: GenerateOutput) -> list[CachedGeneration]:
    """One cache entry per generation; the call's usage is shared out evenly among them."""
    n = max(1, len(output.generations))
    logprobs: list[Any] = output.logprobs or [None] * n
    return [
        CachedGeneration(
            text=text,
            logprobs=logprobs[i] if i < len(logprobs) else None,
            input_tokens=output.usage.input_tokens // n,
            output_tokens=output.usage.output_tokens // n,
        )
        for i, text in enumerate(output.generations)
    ]


def _from_cache(entries: list[CachedGeneration]) -> GenerateOutput:
    logprobs = [e.logprobs for e in entries]
    return GenerateOutput(
        generations=[e.text for e in entries],
        # What the answers cost when they were made; nothing is spent now (no accounting runs
        # for cache hits), but the row's statistics stay the same as on the first run.
        usage=Usage(sum(e.input_tokens for e in entries), sum(e.output_tokens for e in entries)),
        logprobs=logprobs if any(lp is not None for lp in logprobs) else None,
    )


def _assemble(
    keys: list[str],
    hits: dict[str, CachedGeneration],
    missing: list[int],
    fresh: GenerateOutput,
) -> GenerateOutput:
    fresh_at = dict(zip(missing, range(len(missing)), strict=True))
    generations: list[str | None] = []
    logprobs: list[Any] = []
    for i, key in enumerate(keys):
        if i in fresh_at:
            j = fresh_at[i]
            generations.append(fresh.generations[j] if j < len(fresh.generations) else None)
            logprobs.append(
                fresh.logprobs[j] if fresh.logprobs and j < len(fresh.logprobs) else None
            )
        else:
            generations.append(hits[key].text)
            logprobs.append(hits[key].logprobs)
    return GenerateOutput(
        generations=generations,
        usage=fresh.usage,
        logprobs=logprobs if any(lp is not None for lp in logprobs) else None,
        raw=fresh.raw,
        retries=fresh.retries,
        rate_limited=fresh.rate_limited,
    )
