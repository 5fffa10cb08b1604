"""The exceptions synthflow raises.

    SynthflowError
     ├── PipelineValidationError   the DAG can't run as built (raised before anything runs)
     ├── RuntimeParameterError     run(parameters=...) names or values that don't fit
     ├── StepError                 a step failed on a row or batch; carries .step and .row_id
     ├── BudgetExceeded            the run's cost or token budget was reached
     ├── SerializationError        a pipeline can't be written to, or read from, YAML/JSON
     ├── UntrustedPipelineError    a loaded pipeline would do what the user hasn't allowed
     ├── DistisetError             a Distiset can't be saved, loaded or pushed
     ├── OutputParseError          a task can't read its columns from an LLM answer (row failure)
     ├── DiskFullError             a write failed for lack of space; the run stops (resumable)
     ├── WorkerDiedError           a step's worker process died twice on one batch (row failure)
     ├── ModelServerError          a Ray run's model server didn't start (its last output lines)
     ├── BatchesInProgress         offline batches are still running; the run ends, and running
     │                             it again collects them
     └── LLMError                  an LLM call failed for good (after retries)
          ├── LLMStatusError       the endpoint answered with an HTTP error status
          ├── LLMTimeoutError      the request timed out
          ├── LLMConnectionError   the connection failed or was reset
          ├── LLMCertificateError  the server's TLS certificate can't be verified (not retried)
          ├── LLMResponseError     the endpoint answered 2xx with a body we can't read
          │    └── LLMSchemaError  the answer never fit the output schema (after re-asks)
          ├── LLMBatchRequestError a request of an offline batch errored, expired or was cancelled
          └── LLMEmptyAnswerError  the answer has no text: null content, fewer choices than
                                   asked, a refusal, a content filter (never cached)

Messages are one line and say how to fix the problem.
"""

from __future__ import annotations

from typing import Any


class SynthflowError(Exception):
    """Base class of every error synthflow raises on purpose."""


class PipelineValidationError(SynthflowError):
    """The pipeline can't run as built. Raised before any step runs."""


class RuntimeParameterError(SynthflowError):
    """A runtime parameter name or value doesn't fit the step it is given to."""


class StepError(SynthflowError):
    """A step raised while processing rows. The original exception is the ``__cause__``."""

    def __init__(self, message: str, *, step: str, row_id: int | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.row_id = row_id


class BudgetExceeded(SynthflowError):
    """The run reached its cost or token budget; no new LLM calls are issued."""


class SerializationError(SynthflowError):
    """A pipeline can't be written to, or read back from, YAML or JSON."""


class UntrustedPipelineError(SynthflowError):
    """A pipeline loaded from a file or URL would send a key from the environment to a host the
    user hasn't named, read a path outside the working directory, or run a model repo's code
    (``synthflow.trust``); raised before anything runs."""


class DistisetError(SynthflowError):
    """A Distiset can't be saved, loaded or pushed."""


class OutputParseError(SynthflowError):
    """A task's ``format_output`` can't read its columns from an answer. Raise it there: the
    task keeps the row with null outputs and the raw answer, and counts it as failed (it never
    reaches the user as an exception)."""


class DiskFullError(SynthflowError):
    """A write failed because its filesystem is full (or over quota). The run stops at once:
    no new requests are sent, and a re-run resumes once space is freed."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class BatchesInProgress(SynthflowError):
    """Offline batches were submitted and aren't done, and the LLM was told not to wait
    (``offline_batch_generation_block_until_done=None``): the run ends with what it has, and
    running the same command again collects the batches (their ids are in the run directory)."""


class LLMError(SynthflowError):
    """An LLM call failed for good (retries, if any, are exhausted).

    What the failed call still cost is kept on the error, for the run's accounting and budget:
    ``usage`` (a ``synthflow.models.llms.Usage``) for answers that were billed before the failure (a
    structured answer that never fit its schema), ``retries`` and ``rate_limited`` for the
    attempts it made.

    ``fatal`` marks a call that no row of this run can get past: an endpoint that has never
    answered, or never answered successfully and now refuses the key (401, 403) or doesn't have
    the model or path (404), or a certificate that can't be verified. That is a configuration
    mistake: the run stops with the error instead of spending every row's retries to produce a
    dataset of errors. Once an endpoint has answered successfully, its failures are per row.
    """

    usage: Any = None
    retries: int = 0
    rate_limited: int = 0
    fatal: bool = False


FATAL_STATUSES = frozenset({401, 403, 404})
"""Answers that, before any success, say no request will succeed: the key, the model, the path."""


class LLMStatusError(LLMError):
    """The endpoint answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: str = "",
        headers: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.headers = headers or {}
        self.retry_delay: float | None = None
        """Seconds the endpoint's limiter asks this request to wait before its retry (a 429)."""


class LLMTimeoutError(LLMError):
    """The request timed out."""


class LLMConnectionError(LLMError):
    """The connection could not be made, or was reset."""


class LLMCertificateError(LLMError):
    """The server's TLS certificate could not be verified (not retried: it won't change)."""

    fatal = True


class LLMResponseError(LLMError):
    """The endpoint answered with a success status but a body that can't be read."""


class LLMSchemaError(LLMResponseError):
    """The answer did not follow the output schema, even after the re-asks. ``answer`` holds
    the last text the model wrote, ``reasks`` how many times it was asked again."""

    def __init__(self, message: str, *, answer: str | None = None, reasks: int = 0) -> None:
        super().__init__(message)
        self.answer = answer
        self.reasks = reasks


class WorkerDiedError(SynthflowError):
    """A step's worker process died (killed, out of memory, a crash in native code) while it
    held a batch, and again once replaced: the batch's rows fail with this error."""


class ModelServerError(SynthflowError):
    """A model server of a Ray run (``synthflow.distributed.model_servers``) could not be
    placed, exited before it answered, or didn't answer in time; the message ends with the
    server's last lines of output."""


class LLMBatchRequestError(LLMError):
    """A request of an offline batch came back without an answer: it errored, or the batch
    expired or was cancelled before it ran. The row fails; running again sends it again."""


class LLMEmptyAnswerError(LLMError):
    """The endpoint answered, but without text for every generation asked for: null content,
    empty ``choices``, fewer choices than ``n``, a refusal or a content filter. No such answer is
    ever a value or cached; the row fails, and a re-run asks again.

    ``retryable`` says whether asking again may help (a missing choice, or null content while
    sampling); refusals, filters and answers cut off by the token limit are not retried.
    ``output`` holds the generations that did come back with text (a ``GenerateOutput``, or
    None): they are cached, so a re-run asks only for the rest. ``reasons`` says, in a few
    words each, why generations had no text.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        output: Any = None,
        reasons: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.output = output
        self.reasons = reasons


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that made a task group cancel the rest: the one to report, alone. (Call it
    from async code: what counts as a cancellation depends on the running event loop.)"""
    import anyio

    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return first_error(exc)
        if not isinstance(exc, anyio.get_cancelled_exc_class()):
            return exc
    return group.exceptions[0]
