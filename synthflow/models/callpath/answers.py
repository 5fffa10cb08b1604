"""What counts as an answer: every generation asked for, each with text.

A 200 response can still carry no answer: null message content, an empty ``choices`` list,
fewer choices than ``n``, a refusal, or a content filter's finish. Each client says, per
generation, why it has no text (``GenerateOutput.no_answer``, from the provider's finish reason
or refusal field); the checks here turn any shortfall into ``LLMEmptyAnswerError``, so that no
such answer becomes a value in a row or an entry in the response cache.

Where the checks run:

- ``AnswerPool``, inside each HTTP attempt of ``APILLM`` (within the tenacity boundary in
  ``retry.py``): the generations with text are kept across attempts, and a retry asks only for
  the ones still missing. Retried when asking again may help (a missing choice, or null content
  while sampling), at most ``EMPTY_ANSWER_ATTEMPTS`` attempts in all.
- ``require_answers``, on every call's final output (``LLMCalls.generate``, and ``Task.generate``
  when a task runs outside a pipeline), for every LLM: local models and test doubles too.
"""

from __future__ import annotations

from typing import Any

from synthflow.errors import LLMEmptyAnswerError
from synthflow.models.llms.base import GenerateOutput, NoAnswer, Usage

__all__ = [
    "EMPTY_ANSWER_ATTEMPTS",
    "AnswerPool",
    "empty_answer_error",
    "missing_answers",
    "require_answers",
    "samples",
]

EMPTY_ANSWER_ATTEMPTS = 3
"""Attempts (the first one included) for a request whose answer lacks some generations, when
asking again may help. A refusal or a filter is not asked again."""

_DETAIL_CHARS = 80


def samples(generation_kwargs: dict[str, Any]) -> bool:
    """Whether the model samples (temperature unset, meaning the provider's default, or > 0),
    so that asking the same thing again may give another answer."""
    temperature = generation_kwargs.get("temperature")
    try:
        return temperature is None or float(temperature) > 0
    except (TypeError, ValueError):
        return True


def missing_answers(output: GenerateOutput, asked: int) -> dict[int, NoAnswer]:
    """Generation index -> why it has no text, for every one of the ``asked`` generations that
    has none (including those the response left out)."""
    missing = {
        i: output.no_answer.get(i) or NoAnswer("empty")
        for i, text in enumerate(output.generations[:asked])
        if text is None
    }
    for i in range(len(output.generations), asked):
        missing[i] = NoAnswer("missing")
    return missing


def _retry_helps(reason: NoAnswer, sampling: bool) -> bool:
    if reason.kind == "missing":
        return True
    return reason.kind == "empty" and sampling


def describe(reason: NoAnswer) -> str:
    detail = " ".join(reason.detail.split())
    if len(detail) > _DETAIL_CHARS:
        detail = detail[: _DETAIL_CHARS - 3] + "..."
    if reason.kind == "missing":
        return "no choice returned"
    if reason.kind == "refused":
        return f"refused: {detail!r}" if detail else "refused"
    if reason.kind == "filtered":
        return f"blocked by a content filter ({detail})" if detail else "blocked by a filter"
    if reason.kind == "truncated":
        return f"cut off before any text ({detail}): raise max_new_tokens"
    return f"null content ({detail})" if detail else "null content"


def empty_answer_error(
    who: str,
    asked: int,
    missing: int,
    reasons: list[str],
    kept: GenerateOutput,
    *,
    retryable: bool = False,
    attempts: int = 1,
) -> LLMEmptyAnswerError:
    """The one-line error for a call that lacks ``missing`` of ``asked`` generations;
    ``kept`` holds those with text (and what the call cost)."""
    reasons = list(dict.fromkeys(reasons))
    after = f" after {attempts} attempts" if attempts > 1 else ""
    error = LLMEmptyAnswerError(
        f"{who} returned no text for {missing} of {asked} generations{after}: "
        f"{'; '.join(reasons)} (not cached: a re-run asks again)",
        retryable=retryable,
        output=kept,
        reasons=tuple(reasons),
    )
    error.usage = kept.usage
    error.retries, error.rate_limited = kept.retries, kept.rate_limited
    return error


def _error(
    who: str,
    asked: int,
    missing: dict[int, NoAnswer],
    kept: GenerateOutput,
    *,
    sampling: bool,
    attempts: int = 1,
) -> LLMEmptyAnswerError:
    return empty_answer_error(
        who,
        asked,
        len(missing),
        [describe(reason) for reason in missing.values()],
        kept,
        retryable=all(_retry_helps(reason, sampling) for reason in missing.values()),
        attempts=attempts,
    )


def _with_text(output: GenerateOutput) -> GenerateOutput:
    """The generations of ``output`` that have text, in order, with their logprobs."""
    keep = [i for i, text in enumerate(output.generations) if text is not None]
    logprobs = output.logprobs
    return GenerateOutput(
        generations=[output.generations[i] for i in keep],
        usage=output.usage,
        logprobs=[logprobs[i] if i < len(logprobs) else None for i in keep] if logprobs else None,
        raw=output.raw,
        retries=output.retries,
        rate_limited=output.rate_limited,
    )


def require_answers(output: GenerateOutput, asked: int, *, who: str) -> GenerateOutput:
    """``output`` when each of the ``asked`` generations has text (extra ones are dropped);
    else raise ``LLMEmptyAnswerError`` holding the generations that have text."""
    missing = missing_answers(output, asked)
    if missing:
        raise _error(who, asked, missing, _with_text(output), sampling=False)
    if len(output.generations) > asked:
        output.generations = output.generations[:asked]
        if output.logprobs:
            output.logprobs = output.logprobs[:asked]
    return output


class AnswerPool:
    """The generations with text that one call has gathered so far, across its attempts.

    ``wanted`` is how many are still missing: a retry asks for that many. ``add`` takes an
    attempt's output and returns the complete answer once there are ``asked`` generations,
    else raises ``LLMEmptyAnswerError`` (``retryable`` when asking again may help) holding
    what was gathered. The usage of every attempt is summed: each was billed.
    """

    def __init__(self, asked: int, *, who: str, sampling: bool) -> None:
        self.asked = asked
        self.who = who
        self.sampling = sampling
        self.attempts = 0
        self.kept = GenerateOutput(generations=[], usage=Usage())
        self._logprobs: list[Any] = []

    @property
    def wanted(self) -> int:
        return self.asked - len(self.kept.generations)

    def add(self, output: GenerateOutput) -> GenerateOutput:
        self.attempts += 1
        wanted = self.wanted
        missing = missing_answers(output, wanted)
        # Only the choices asked for count (a server that sends more is not trusted further).
        output.generations = output.generations[:wanted]
        good = _with_text(output)
        self.kept.generations.extend(good.generations)
        self._logprobs.extend(good.logprobs or [None] * len(good.generations))
        self.kept.usage = self.kept.usage + output.usage
        self.kept.raw = output.raw
        has_logprobs = any(lp is not None for lp in self._logprobs)
        self.kept.logprobs = list(self._logprobs) if has_logprobs else None
        if not missing:
            return self.kept
        raise _error(
            self.who,
            self.asked,
            missing,
            self.kept,
            sampling=self.sampling,
            attempts=self.attempts,
        )
