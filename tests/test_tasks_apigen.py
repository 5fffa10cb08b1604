"""APIGen: the generator (with its format check), the execution checker (calls run in a child
process with time and memory limits) and the semantic checker."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from synthflow.errors import OutputParseError
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import (
    ERROR_COLUMN,
    APIGenExecutionChecker,
    APIGenGenerator,
    APIGenSemanticChecker,
)
from synthflow.testing import FunctionLLM, OfflineLLM

FUNCTIONS = '''\
import time


def final_velocity(initial_velocity: float, acceleration: float, time: float) -> float:
    """The velocity after accelerating for a while."""
    return initial_velocity + acceleration * time


def shout(text: str) -> str:
    print("this goes to stderr, not into the answer")
    return text.upper()


def divide(a: float, b: float) -> float:
    return a / b


def spin(n: int) -> int:
    while True:
        n += 1


def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "rested"


def hog(megabytes: int) -> int:
    return len(bytearray(megabytes * 1024 * 1024))


def leave() -> None:
    import os
    os.system("echo hi")
'''

EXAMPLES = (
    '## Query:\nWhat is 3 times 4?\n## Answers:\n[{"name": "multiply", "arguments": '
    '{"a": 3, "b": 4}}]'
)
TOOLS = json.dumps(
    [
        {
            "type": "function",
            "function": {
                "name": "final_velocity",
                "description": "The velocity after accelerating for a while.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "initial_velocity": {"type": "number"},
                        "acceleration": {"type": "number"},
                        "time": {"type": "number"},
                    },
                },
            },
        }
    ]
)
ROW = {
    "examples": EXAMPLES,
    "func_name": "final_velocity",
    "func_desc": "The velocity after accelerating for a while.",
    "tools": TOOLS,
}


@pytest.fixture
def libpath(tmp_path: Path) -> str:
    path = tmp_path / "functions.py"
    path.write_text(FUNCTIONS)
    return str(path)


def calls(*items: tuple[str, dict[str, Any]]) -> str:
    return json.dumps([{"name": name, "arguments": arguments} for name, arguments in items])


# -- generator: prompt and format check --------------------------------------------------------


def test_generator_prompt() -> None:
    task = APIGenGenerator(llm=OfflineLLM())
    task.load()
    system, user = task.format_input(ROW)
    assert system == {
        "role": "system",
        "content": "You write training data for AI assistants that answer users by calling "
        "functions. For a function you are given, you invent a realistic request a user could "
        "make, and the exact function calls, with correct and complete arguments, that carry "
        "it out.",
    }
    assert user["role"] == "user"
    assert user["content"] == (
        f"Examples of queries and the calls that answer them:\n{EXAMPLES}\n\n"
        "The function: `final_velocity`\n"
        "What it does: The velocity after accelerating for a while.\n"
        f"\nIts specification:\n{TOOLS}\n\n"
        "Write one new query for this function. The query must be answered by exactly one call "
        "of `final_velocity`. Make the query concrete and natural, as a real user would phrase "
        "it, and different in topic and wording from the examples. Put every value a call needs "
        "in the query itself, and give each argument the type the function expects.\n\n"
        "Answer with one JSON object and nothing else, in this form:\n"
        '{"query": "<the user\'s request>", "answers": [{"name": "<function name>", '
        '"arguments": {"<parameter>": <value>, ...}}, ...]}'
    )


def test_generator_prompt_for_parallel_queries_without_tools() -> None:
    task = APIGenGenerator(llm=OfflineLLM(), number={3: 1.0}, use_tools=False)
    task.load()
    content = str(task.format_input(ROW)[1]["content"])
    assert "ask for 3 things at once, answered by 3 calls" in content
    assert "specification" not in content.split("Write one new query")[0]
    with pytest.raises(ValueError, match="at least 1"):
        APIGenGenerator(llm=OfflineLLM(), number=[0, 2])


@pytest.mark.parametrize(
    "answer",
    [
        '{"query": "Speed after 5 s?", "answers": [{"name": "final_velocity", '
        '"arguments": {"initial_velocity": 0, "acceleration": 2, "time": 5}}]}',
        'Sure! Here it is:\n```json\n[{"query": "Speed after 5 s?", "answers": [{"name": '
        '"final_velocity", "arguments": {"initial_velocity": 0, "acceleration": 2, "time": 5}}]}]'
        "\n```\nLet me know if you need more.",
        '{"pairs": [{"query": "Speed after 5 s?", "answers": [{"name": "final_velocity", '
        '"arguments": "{\\"initial_velocity\\": 0, \\"acceleration\\": 2, \\"time\\": 5}"}]}]}',
        '{"query": "Speed after 5 s?", "answers": {"type": "function", "function": {"name": '
        '"final_velocity", "arguments": {"initial_velocity": 0, "acceleration": 2, "time": 5}}}}',
    ],
)
def test_generator_reads_calls_as_models_write_them(answer: str) -> None:
    task = APIGenGenerator(llm=OfflineLLM())
    columns = task.format_output(answer, dict(ROW))
    assert columns["query"] == "Speed after 5 s?"
    assert json.loads(columns["answers"]) == [
        {
            "name": "final_velocity",
            "arguments": {"initial_velocity": 0, "acceleration": 2, "time": 5},
        }
    ]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (None, "no text"),
        ("I can't think of a query.", "no JSON"),
        ('{"answers": [{"name": "final_velocity", "arguments": {}}]}', '"query"'),
        ('{"query": "q", "answers": []}', "no list of calls"),
        ('{"query": "q", "answers": [{"arguments": {}}]}', '"name"'),
        ('{"query": "q", "answers": [{"name": "final_velocity", "arguments": "{oops"}]}', "JSON"),
        ('{"query": "q", "answers": [{"name": "rm_rf", "arguments": {}}]}', "wasn't given"),
    ],
)
def test_generator_format_check_rejects(answer: str | None, reason: str) -> None:
    task = APIGenGenerator(llm=OfflineLLM())
    with pytest.raises(OutputParseError, match=reason):
        task.format_output(answer, dict(ROW))


# -- semantic checker ----------------------------------------------------------------------------

CHECK_ROW = {
    "func_desc": "The velocity after accelerating for a while.",
    "query": "Speed after 5 s?",
    "answers": calls(("final_velocity", {"initial_velocity": 0, "acceleration": 2, "time": 5})),
    "execution_result": ["10.0"],
    "keep_row_after_execution_check": True,
}


def test_semantic_checker_prompt() -> None:
    task = APIGenSemanticChecker(llm=OfflineLLM())
    system, user = task.format_input(CHECK_ROW)
    assert system["role"] == "system" and "function calls" in str(system["content"])
    assert user["content"] == (
        "What the function does: The velocity after accelerating for a while.\n\n"
        "The user's request:\nSpeed after 5 s?\n\n"
        f"The calls made for it:\n{CHECK_ROW['answers']}\n\n"
        "What the calls returned:\n1. 10.0\n\n"
        "Check three things:\n"
        "1. The calls do what the request asks: the right functions, as many calls as it "
        "needs, none missing or extra.\n"
        "2. Every argument is correct and complete, and comes from the request rather than "
        "being made up.\n"
        "3. The results answer the request and show no error.\n\n"
        "Answer with one JSON object and nothing else:\n"
        '{"thought": "<your reasoning, in a few sentences>", "passes": "yes" or "no"}'
    )


@pytest.mark.parametrize(
    ("answer", "thought", "passes"),
    [
        ('{"thought": "All good.", "passes": "yes"}', "All good.", True),
        ('```json\n{"Thought": "Wrong time.", "passes": "No"}\n```', "Wrong time.", False),
        ('Here: {"thought": "Fine", "passes": true} done', "Fine", True),
        (
            "Thought: the arguments match the query.\nPasses: yes",
            "the arguments match the query.",
            True,
        ),
        ('{"thought": "Missing a call", "passes": "no."}', "Missing a call", False),
    ],
)
def test_semantic_checker_reads_verdicts(answer: str, thought: str, passes: bool) -> None:
    task = APIGenSemanticChecker(llm=OfflineLLM())
    assert task.format_output(answer, dict(CHECK_ROW)) == {
        "keep_row_after_semantic_check": passes,
        "thought": thought,
    }


@pytest.mark.parametrize(
    "answer", [None, "", "Looks fine to me.", '{"thought": "x", "passes": "maybe"}']
)
def test_semantic_checker_unreadable_verdicts(answer: str | None) -> None:
    with pytest.raises(OutputParseError):
        APIGenSemanticChecker(llm=OfflineLLM()).format_output(answer, dict(CHECK_ROW))


# -- execution checker ---------------------------------------------------------------------------


def check(libpath: str, *answers: Any, **fields: Any) -> list[dict[str, Any]]:
    step = APIGenExecutionChecker(libpath=libpath, **fields)
    step.load()
    rows = [{"answers": answer} for answer in answers]
    (out,) = list(step.process(rows))
    return out


def test_runs_calls_and_keeps_their_results(libpath: str) -> None:
    rows = check(
        libpath,
        calls(
            ("final_velocity", {"initial_velocity": 1, "acceleration": 2, "time": 3}),
            ("shout", {"text": "hi"}),
        ),
        [{"name": "divide", "arguments": {"a": 1, "b": 0}}],
        calls(("missing", {})),
        None,
        "not json",
        calls(("leave", {})),
    )
    assert rows[0]["keep_row_after_execution_check"] is True
    assert rows[0]["execution_result"] == ["7", "HI"]
    assert rows[1]["keep_row_after_execution_check"] is False
    assert rows[1]["execution_result"] == ["ZeroDivisionError: division by zero"]
    assert rows[2]["execution_result"] == ["Function 'missing' not found."]
    assert rows[3]["execution_result"] == ["No answers were provided."]
    assert rows[4]["execution_result"][0].startswith("The answers are not JSON")
    assert "was not run" in rows[5]["execution_result"][0]
    assert not any(row["keep_row_after_execution_check"] for row in rows[1:])


def test_a_call_that_loops_forever_is_stopped_by_the_time_limit(libpath: str) -> None:
    started = time.monotonic()
    rows = check(libpath, calls(("spin", {"n": 0})), calls(("nap", {"seconds": 60})), timeout=1)
    assert time.monotonic() - started < 20
    for row in rows:
        assert row["keep_row_after_execution_check"] is False
        (result,) = row["execution_result"]
        assert "time limit" in result or "CPU time" in result


def test_a_call_that_allocates_too_much_is_stopped_by_the_memory_limit(libpath: str) -> None:
    rows = check(
        libpath,
        calls(("hog", {"megabytes": 4096})),
        calls(("hog", {"megabytes": 1})),
        memory_limit_mb=256,
    )
    assert rows[0]["keep_row_after_execution_check"] is False
    assert "MemoryError" in rows[0]["execution_result"][0]
    assert rows[1] == {
        "answers": calls(("hog", {"megabytes": 1})),
        "keep_row_after_execution_check": True,
        "execution_result": [str(1024 * 1024)],
    }


def test_generated_code_never_runs_in_the_engine_process(libpath: str, tmp_path: Path) -> None:
    marker = tmp_path / "pid.txt"
    Path(libpath).write_text(
        "import os\n\ndef where() -> int:\n"
        f"    open({str(marker)!r}, 'w').write(str(os.getpid()))\n"
        "    return os.getpid()\n"
    )
    (row,) = check(libpath, calls(("where", {})))
    assert row["keep_row_after_execution_check"] is True
    assert int(marker.read_text()) != os.getpid()


def test_a_folder_of_functions(tmp_path: Path) -> None:
    (tmp_path / "double.py").write_text("def double(x):\n    return 2 * x\n")
    (row,) = check(str(tmp_path), calls(("double", {"x": 21})))
    assert row["execution_result"] == ["42"]


def test_a_missing_libpath_fails_at_load() -> None:
    with pytest.raises(FileNotFoundError, match="libpath"):
        APIGenExecutionChecker(libpath="/nowhere/functions.py").load()


# -- the three stages in a pipeline ----------------------------------------------------------------


def scripted(messages: list[dict[str, Any]]) -> str:
    content = str(messages[-1]["content"])
    if content.startswith("Examples of queries"):
        return (
            '```json\n{"query": "Speed after 5 s from rest at 2 m/s2?", "answers": [{"name": '
            '"final_velocity", "arguments": {"initial_velocity": 0, "acceleration": 2, '
            '"time": 5}}]}\n```'
        )
    if "returned:\n1. 10" in content:
        return '{"thought": "The call matches.", "passes": "yes"}'
    return "I am not sure."


def test_pipeline_of_the_three_stages(libpath: str) -> None:
    with Pipeline(name="apigen") as pipeline:
        data = LoadDataFromDicts(data=[dict(ROW), {**ROW, "func_name": "shout", "tools": "[]"}])
        generate = APIGenGenerator(name="generate", llm=FunctionLLM(fn=scripted))
        execute = APIGenExecutionChecker(name="execute", libpath=libpath)
        semantic = APIGenSemanticChecker(name="semantic", llm=FunctionLLM(fn=scripted))
        data >> generate >> execute >> semantic
    distiset = pipeline.run(use_cache=False, progress=False)
    first, second = (dict(row) for row in distiset["default"]["train"])
    assert first["query"] == "Speed after 5 s from rest at 2 m/s2?"
    assert first["execution_result"] == ["10"]
    assert first["keep_row_after_execution_check"] is True
    assert first["keep_row_after_semantic_check"] is True
    assert first["thought"] == "The call matches."
    # The second row's answer calls a function it wasn't given: the format check fails it.
    assert second["query"] is None and "wasn't given" in second[ERROR_COLUMN]
    # The execution check (no model) reads it as any row: no answers to run, so it is not kept;
    # the semantic check (a model) is not asked about it. Its first error stays.
    assert second["execution_result"] == ["No answers were provided."]
    assert second["keep_row_after_execution_check"] is False
    assert second["thought"] is None and second["keep_row_after_semantic_check"] is None
    assert second[ERROR_COLUMN].startswith("generate: ")


def test_failed_executions_are_not_sent_to_the_semantic_checker() -> None:
    asked: list[Any] = []

    def judge(messages: Any) -> str:
        asked.append(messages)
        return '{"thought": "ok", "passes": "yes"}'

    task = APIGenSemanticChecker(llm=FunctionLLM(fn=judge))
    task.load()
    (rows,) = list(task.process([{**CHECK_ROW, "keep_row_after_execution_check": False}]))
    assert rows[0]["keep_row_after_semantic_check"] is False and rows[0]["thought"] is None
    assert asked == []


def test_round_trips_through_yaml_with_the_same_signature(libpath: str) -> None:
    with Pipeline(name="apigen-yaml") as pipeline:
        data = LoadDataFromDicts(data=[dict(ROW)])
        generate = APIGenGenerator(name="generate", llm=OfflineLLM(), number=[1, 2], seed=5)
        execute = APIGenExecutionChecker(name="execute", libpath=libpath, timeout=2.5)
        semantic = APIGenSemanticChecker(
            name="semantic", llm=OfflineLLM(), exclude_failed_execution=False
        )
        data >> generate >> execute >> semantic
    loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
    assert loaded.signature == pipeline.signature
    again = loaded.steps["generate"]
    assert isinstance(again, APIGenGenerator) and (again.number, again.seed) == ([1, 2], 5)
    execute_again = loaded.steps["execute"]
    assert isinstance(execute_again, APIGenExecutionChecker)
    assert (execute_again.libpath, execute_again.timeout) == (libpath, 2.5)
    semantic_again = loaded.steps["semantic"]
    assert isinstance(semantic_again, APIGenSemanticChecker)
    assert semantic_again.exclude_failed_execution is False
