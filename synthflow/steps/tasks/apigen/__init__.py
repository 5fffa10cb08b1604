"""Function-calling data, APIGen's three stages: APIGenGenerator writes a query and the calls
that answer it (its parser is the paper's format check), APIGenExecutionChecker runs the calls
against the user's Python functions in a child process, APIGenSemanticChecker asks an LLM
whether the calls and their results answer the query.

The paper: Liu, Zhang, Hoang, Ma, Zhu, Li, Savarese, Xiong and Niebles, "APIGen: Automated
Pipeline for Generating Verifiable and Diverse Function-Calling Datasets" (arXiv:2406.18518).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, field_validator

from synthflow.errors import OutputParseError
from synthflow.runtime_parameters import RuntimeParameter
from synthflow.steps.base import Row, Step, StepInput
from synthflow.steps.tasks.base import Task
from synthflow.steps.tasks.parsing import json_value, require_text
from synthflow.steps.tasks.typing import ChatType

# -- the generator -------------------------------------------------------------------------------

GENERATOR_SYSTEM_PROMPT = (
    "You write training data for AI assistants that answer users by calling functions. For a "
    "function you are given, you invent a realistic request a user could make, and the exact "
    "function calls, with correct and complete arguments, that carry it out."
)

_CALLS_FORMAT = (
    "Answer with one JSON object and nothing else, in this form:\n"
    '{"query": "<the user\'s request>", "answers": [{"name": "<function name>", '
    '"arguments": {"<parameter>": <value>, ...}}, ...]}'
)

QUERY_SCHEMA: dict[str, Any] = {
    "title": "APIGenQuery",
    "type": "object",
    "properties": {
        "query": {"type": "string"},
        "answers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "arguments": {"type": "object"}},
                "required": ["name", "arguments"],
            },
        },
    },
    "required": ["query", "answers"],
}
"""The answer's JSON schema, asked of the LLM with ``use_default_structured_output=True``."""


class APIGenGenerator(Task):
    """Writes a user query for a function and the calls that answer it, as JSON: the generation
    stage of APIGen, with the paper's format check as the parser.

    From Liu, Zhang, Hoang, Ma, Zhu, Li, Savarese, Xiong and Niebles, "APIGen: Automated Pipeline
    for Generating Verifiable and Diverse Function-Calling Datasets" (arXiv:2406.18518). The
    prompt shows the row's ``examples`` (query and calls pairs, as few shots), the function's name
    and description, and its specification (the ``tools`` column, with ``use_tools=True``), and
    asks for one query whose answer takes ``number`` calls: one for a simple query, more for the
    paper's parallel queries (the same function with other arguments, or several functions).

    Input columns:
        - examples (str): example queries with their calls, to show the style.
        - func_name (str): the name of the function to write a query for.
        - func_desc (str): what the function does.
        - tools (str, optional): the function's specification as JSON (OpenAI tool form), read
          when the row has it and ``use_tools`` is set; it also names the other functions a
          call may use.

    Output columns:
        - query (str): the user's request.
        - answers (str): the calls that answer it, a JSON list of
          ``{"name": ..., "arguments": {...}}`` (``json.loads`` it).
        - model_name (str): the model that wrote them.

    Fields:
        system_prompt: the system message.
        number: the calls per query: an int, a list to pick from, or ``{number: weight}``.
        use_tools: add the row's ``tools`` column to the prompt.
        use_default_structured_output: ask the LLM for ``QUERY_SCHEMA`` when it takes a schema.

    The parser (the format check) reads a JSON object with ``query`` and ``answers`` (also in a
    code fence or prose, in a list, or under ``pairs``); a call's ``arguments`` may be an object
    or a JSON string. A missing query, no calls, or a call of a function that is neither
    ``func_name`` nor in ``tools`` is a row failure (``OutputParseError``).
    """

    system_prompt: str = Field(
        default=GENERATOR_SYSTEM_PROMPT, description="The system message of every call."
    )
    number: int | list[int] | dict[int, float] = Field(
        default=1,
        description="Calls per query: an int, a list to pick from at random, or a mapping of "
        "numbers to their weights.",
    )
    use_tools: bool = Field(
        default=True, description="Add the row's 'tools' column (the specification) to the prompt."
    )
    seed: int = Field(default=42, description="Seeds the draw of 'number' when it varies.")

    _random: random.Random = PrivateAttr(default_factory=random.Random)

    def get_structured_output(self) -> dict[str, Any]:
        return QUERY_SCHEMA

    @field_validator("number")
    @classmethod
    def _check_number(cls, value: int | list[int] | dict[int, float]) -> Any:
        numbers = [value] if isinstance(value, int) else list(value)
        if not numbers or any(n < 1 for n in numbers):
            raise ValueError("number must be at least 1 (or a non-empty list or mapping of them)")
        return value

    def load(self) -> None:
        super().load()
        self._random = random.Random(self.seed)

    @property
    def inputs(self) -> list[str]:
        return ["examples", "func_name", "func_desc"]

    @property
    def optional_inputs(self) -> list[str]:
        return ["tools"]

    @property
    def outputs(self) -> list[str]:
        return ["query", "answers", "model_name"]

    def _number(self) -> int:
        if isinstance(self.number, int):
            return self.number
        if isinstance(self.number, list):
            return self._random.choice(self.number)
        numbers = list(self.number)
        return self._random.choices(numbers, weights=[self.number[n] for n in numbers])[0]

    def format_input(self, row: Row) -> ChatType:
        number = self._number()
        name = row["func_name"]
        if number == 1:
            shape = f"The query must be answered by exactly one call of `{name}`."
        else:
            shape = (
                f"The query must ask for {number} things at once, answered by {number} calls: "
                f"`{name}` with different arguments, or `{name}` together with other functions "
                "of the specification."
            )
        spec = row.get("tools") if self.use_tools else None
        spec_text = f"\nIts specification:\n{_text(spec)}\n" if spec else ""
        content = (
            f"Examples of queries and the calls that answer them:\n{_text(row['examples'])}\n\n"
            f"The function: `{name}`\n"
            f"What it does: {row['func_desc']}\n"
            f"{spec_text}\n"
            f"Write one new query for this function. {shape} Make the query concrete and natural, "
            "as a real user would phrase it, and different in topic and wording from the "
            "examples. Put every value a call needs in the query itself, and give each argument "
            "the type the function expects.\n\n"
            f"{_CALLS_FORMAT}"
        )
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": content},
        ]

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        query, calls = parse_calls(output, _known_functions(row))
        return {"query": query, "answers": json.dumps(calls, ensure_ascii=False)}


def parse_calls(output: str | None, known: set[str] | None) -> tuple[str, list[dict[str, Any]]]:
    """The query and the calls in a generator's answer (see ``APIGenGenerator``); ``known`` is
    the functions a call may name (None: any)."""
    what = 'a JSON object with "query" and "answers"'
    value = json_value(output, what)
    if isinstance(value, dict) and isinstance(value.get("pairs"), list):
        value = value["pairs"]
    if isinstance(value, list):
        value = next((item for item in value if isinstance(item, dict)), None)
    if not isinstance(value, dict):
        raise OutputParseError(f"the answer's JSON holds no object; expected {what}")
    query = value.get("query")
    if not isinstance(query, str) or not query.strip():
        raise OutputParseError('the answer\'s JSON has no "query" text')
    raw = value.get("answers", value.get("answer", value.get("calls")))
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise OutputParseError('the answer\'s JSON has no list of calls under "answers"')
    calls = [_call(item) for item in raw]
    if known:
        unknown = sorted({call["name"] for call in calls} - known)
        if unknown:
            raise OutputParseError(f"the answer calls functions it wasn't given: {unknown}")
    return query.strip(), calls


def _call(item: Any) -> dict[str, Any]:
    if isinstance(item, dict) and isinstance(item.get("function"), dict):
        item = item["function"]  # the OpenAI tool-call form
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise OutputParseError(f'a call is not an object with a "name": {item!r:.80}')
    arguments = item.get("arguments", item.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise OutputParseError(
                f"the arguments of {item['name']!r} are not JSON: {arguments!r:.80}"
            ) from None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise OutputParseError(f"the arguments of {item['name']!r} are not an object")
    return {"name": item["name"].strip(), "arguments": arguments}


def _known_functions(row: Row) -> set[str]:
    names = {str(row["func_name"])}
    tools = row.get("tools")
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except ValueError:
            return names
    for tool in tools if isinstance(tools, list) else [tools]:
        if isinstance(tool, dict):
            inner = tool.get("function")
            name = (inner if isinstance(inner, dict) else tool).get("name")
            if isinstance(name, str):
                names.add(name)
    return names


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)


# -- the semantic checker ------------------------------------------------------------------------

SEMANTIC_SYSTEM_PROMPT = (
    "You review data for training AI assistants that call functions. You decide whether the "
    "function calls made for a user's request, and what they returned, really serve that "
    "request."
)

CHECKER_SCHEMA: dict[str, Any] = {
    "title": "APIGenSemanticCheck",
    "type": "object",
    "properties": {
        "thought": {"type": "string"},
        "passes": {"type": "string", "enum": ["yes", "no"]},
    },
    "required": ["thought", "passes"],
}
"""The checker's JSON schema, asked of the LLM with ``use_default_structured_output=True``."""

_VERDICT_RE = re.compile(r"\bpass(?:es|ed)?\b\W{0,6}(yes|no|true|false)\b", re.IGNORECASE)


class APIGenSemanticChecker(Task):
    """Asks an LLM whether the calls made for a query, and their results, serve the query: the
    semantic check, APIGen's third stage.

    From Liu, Zhang, Hoang, Ma, Zhu, Li, Savarese, Xiong and Niebles, "APIGen: Automated Pipeline
    for Generating Verifiable and Diverse Function-Calling Datasets" (arXiv:2406.18518). The
    model checks that the calls match what the query asks (functions and count), that the
    arguments are right and complete, taken from the query rather than made up, and that the
    results answer it without errors; it answers with a thought and a yes or no.

    Input columns:
        - func_desc (str): what the function does.
        - query (str): the user's request.
        - answers (str): the calls, a JSON list of ``{"name": ..., "arguments": {...}}``.
        - execution_result (list[str]): what each call returned (``APIGenExecutionChecker``).
        - keep_row_after_execution_check (bool): whether the calls ran; with
          ``exclude_failed_execution`` a row where it is False is not sent to the LLM and fails
          the check (``thought`` null).

    Output columns:
        - keep_row_after_semantic_check (bool): whether the row passes, to filter on.
        - thought (str): the model's reasoning.
        - model_name (str): the model that checked.

    Fields:
        system_prompt: the system message.
        exclude_failed_execution: skip (and fail) rows whose calls failed to run.
        use_default_structured_output: ask the LLM for ``CHECKER_SCHEMA`` when it takes one.

    The parser reads a JSON object with ``thought`` and ``passes`` (``yes``/``no``, or a
    boolean; in a code fence or prose too), or else a ``Passes: yes`` line with the text
    before it as the thought; anything else is a row failure (``OutputParseError``).
    """

    system_prompt: str = Field(
        default=SEMANTIC_SYSTEM_PROMPT, description="The system message of every call."
    )
    exclude_failed_execution: bool = Field(
        default=True,
        description="Don't send rows whose calls failed to run (keep_row_after_execution_check "
        "False): they fail the check without a call.",
    )

    def get_structured_output(self) -> dict[str, Any]:
        return CHECKER_SCHEMA

    @property
    def inputs(self) -> list[str]:
        return [
            "func_desc",
            "query",
            "answers",
            "execution_result",
            "keep_row_after_execution_check",
        ]

    @property
    def outputs(self) -> list[str]:
        return ["keep_row_after_semantic_check", "thought", "model_name"]

    def format_input(self, row: Row) -> ChatType:
        results = row["execution_result"]
        if isinstance(results, list):
            results = "\n".join(f"{i}. {result}" for i, result in enumerate(results, 1))
        content = (
            f"What the function does: {row['func_desc']}\n\n"
            f"The user's request:\n{row['query'] or ''}\n\n"
            f"The calls made for it:\n{_text(row['answers'] or '')}\n\n"
            f"What the calls returned:\n{results}\n\n"
            "Check three things:\n"
            "1. The calls do what the request asks: the right functions, as many calls as it "
            "needs, none missing or extra.\n"
            "2. Every argument is correct and complete, and comes from the request rather than "
            "being made up.\n"
            "3. The results answer the request and show no error.\n\n"
            "Answer with one JSON object and nothing else:\n"
            '{"thought": "<your reasoning, in a few sentences>", "passes": "yes" or "no"}'
        )
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": content},
        ]

    def format_output(self, output: str | None, row: Row) -> dict[str, Any]:
        thought, passes = parse_verdict(output)
        return {"keep_row_after_semantic_check": passes, "thought": thought}

    async def process_row(self, row: Row) -> list[Row]:
        if self.exclude_failed_execution and row.get("keep_row_after_execution_check") is False:
            row.update(keep_row_after_semantic_check=False, thought=None)
            row["model_name"] = self.llm.model_name
            return [row]
        return await super().process_row(row)


def parse_verdict(output: str | None) -> tuple[str, bool]:
    """The thought and the verdict in a semantic checker's answer."""
    text = require_text(output, 'a JSON object with "thought" and "passes"')
    try:
        value = json_value(text)
    except OutputParseError:
        value = None
    if isinstance(value, dict):
        lowered = {str(k).strip().lower(): v for k, v in value.items()}
        verdict = _yes_no(lowered.get("passes", lowered.get("pass")))
        thought = lowered.get("thought", lowered.get("reasoning", ""))
        if verdict is not None and isinstance(thought, str):
            return thought.strip(), verdict
    found = list(_VERDICT_RE.finditer(text))
    if found:
        verdict = _yes_no(found[-1].group(1))
        thought = re.sub(r"^\W*thought\W*", "", text[: found[-1].start()], flags=re.I).strip()
        if verdict is not None:
            return thought.strip(' ,"{}\n'), verdict
    raise OutputParseError('found no "passes": yes or no in the answer')


def _yes_no(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().strip(".").lower()
        if word in ("yes", "true", "pass", "passed"):
            return True
        if word in ("no", "false", "fail", "failed"):
            return False
    return None


# -- the execution checker -----------------------------------------------------------------------

_SANDBOX = Path(__file__).with_name("_sandbox.py")


class APIGenExecutionChecker(Step):
    """Runs the calls in ``answers`` against the user's Python functions and keeps what each
    returned: the execution check, APIGen's second stage.

    From Liu, Zhang, Hoang, Ma, Zhu, Li, Savarese, Xiong and Niebles, "APIGen: Automated Pipeline
    for Generating Verifiable and Diverse Function-Calling Datasets" (arXiv:2406.18518). Each
    call runs in a child Python process of its own, never in the engine's: the child caps its CPU
    time and address space with ``resource.setrlimit`` before it loads ``libpath``, and is killed
    when it runs past ``timeout`` seconds of wall time. A call that raises, loops, sleeps or
    allocates past ``memory_limit_mb`` fails alone, with the reason in its result. (POSIX only:
    the limits use the ``resource`` module.)

    Input columns:
        - answers (str): the calls, a JSON list of ``{"name": ..., "arguments": {...}}`` as
          ``APIGenGenerator`` writes them (a list is taken as it is).

    Output columns:
        - keep_row_after_execution_check (bool): whether every call ran without an error.
        - execution_result (list[str]): each call's result (``str`` of what it returned) or
          the reason it failed.

    Fields:
        libpath: a ``.py`` file defining the functions, or a folder of ``<name>.py`` files
            each defining the function ``<name>``.
        check_is_dangerous: don't run functions whose source starts processes, touches the OS,
            reads input or exits the interpreter (a heuristic, not a sandbox).

    Runtime parameters:
        - timeout: seconds of wall time (and of CPU time) one call may take.
        - memory_limit_mb: the child's address-space cap in MiB (0: none).
        - max_workers: calls run at once; default the machine's CPU count.
    """

    libpath: str = Field(
        description="A .py file defining the functions, or a folder of <name>.py files."
    )
    check_is_dangerous: bool = Field(
        default=True,
        description="Don't run functions whose source starts processes, touches the OS, reads "
        "input or exits.",
    )
    timeout: RuntimeParameter[float] = Field(
        default=10.0, gt=0, description="Seconds of wall time (and CPU time) one call may take."
    )
    memory_limit_mb: RuntimeParameter[int] = Field(
        default=1024, ge=0, description="The child process's address-space cap in MiB (0: none)."
    )
    max_workers: RuntimeParameter[int] | None = Field(
        default=None, description="Calls run at once; None: the machine's CPU count."
    )

    @property
    def inputs(self) -> list[str]:
        return ["answers"]

    @property
    def outputs(self) -> list[str]:
        return ["keep_row_after_execution_check", "execution_result"]

    def load(self) -> None:
        super().load()
        if not Path(self.libpath).exists():
            raise FileNotFoundError(
                f"libpath {self.libpath!r} doesn't exist: give a .py file that defines the "
                "functions, or a folder of <name>.py files"
            )

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        plans = [_calls_of(row.get("answers")) for row in inputs]
        calls = [call for plan in plans if isinstance(plan, list) for call in plan]
        workers = max(1, min(len(calls), self.max_workers or os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = iter(list(pool.map(self.execute, calls)))
        for row, plan in zip(inputs, plans, strict=True):
            if isinstance(plan, str):  # no calls to run: the reason is the result
                row["keep_row_after_execution_check"] = False
                row["execution_result"] = [plan]
                continue
            done = [next(results) for _ in plan]
            row["keep_row_after_execution_check"] = all(keep for keep, _ in done)
            row["execution_result"] = [result for _, result in done]
        yield inputs

    def execute(self, call: dict[str, Any] | None) -> tuple[bool, str]:
        """Runs one call in a child process: whether it ran without error, and its result."""
        if not isinstance(call, dict):
            return False, "Nothing was generated for this call."
        name = call.get("name")
        request = {
            "libpath": str(Path(self.libpath).resolve()),
            "name": name,
            "arguments": call.get("arguments"),
            "cpu_seconds": max(1, math.ceil(self.timeout)),
            "memory_bytes": self.memory_limit_mb * 1024 * 1024,
            "check_is_dangerous": self.check_is_dangerous,
        }
        try:
            # -P: the sandbox's folder (which holds a typing.py) stays off sys.path.
            done = subprocess.run(
                [sys.executable, "-P", str(_SANDBOX)],
                input=json.dumps(request),
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False, f"The call of '{name}' ran past the time limit ({self.timeout} s)."
        if done.returncode < 0:
            return False, f"The call of '{name}' was killed: {_signal_reason(-done.returncode)}."
        try:
            answer = json.loads(done.stdout)
            return bool(answer["keep"]), str(answer["execution_result"])
        except (ValueError, KeyError, TypeError):
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            if "MemoryError" in done.stderr:
                last = "MemoryError: the call ran out of memory"
            return False, f"The call of '{name}' failed: {last[:300]}"


def _calls_of(answers: Any) -> list[dict[str, Any] | None] | str:
    """The calls in an ``answers`` value, or the reason there are none to run."""
    if answers is None or answers == "":
        return "No answers were provided."
    if isinstance(answers, str):
        try:
            answers = json.loads(answers)
        except ValueError:
            return f"The answers are not JSON: {answers[:80]!r}"
    if isinstance(answers, dict):
        answers = [answers]
    if not isinstance(answers, list) or not answers:
        return "No answers were provided."
    return [call if isinstance(call, dict) else None for call in answers]


def _signal_reason(number: int) -> str:
    if number == signal.SIGXCPU:
        return "it used up its CPU time limit"
    if number == signal.SIGKILL:
        return "SIGKILL (out of memory, or the time limit)"
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
