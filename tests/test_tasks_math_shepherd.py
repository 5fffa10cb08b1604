"""Math-Shepherd: MathShepherdGenerator, MathShepherdCompleter (hard estimation) and FormatPRM."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from synthflow.errors import OutputParseError
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import LoadDataFromDicts, StepInput, step
from synthflow.steps.tasks import (
    ERROR_COLUMN,
    FormatPRM,
    MathShepherdCompleter,
    MathShepherdGenerator,
)
from synthflow.steps.tasks.math_shepherd import (
    FEW_SHOTS_GSM8K,
    FEW_SHOTS_MATH,
    RULES_GSM8K,
    RULES_MATH,
    SYSTEM_PROMPT,
    final_answer,
    solution_steps,
)
from synthflow.testing import FunctionLLM, OfflineLLM

PROBLEM = (
    "Janet's ducks lay 16 eggs a day. She eats 3 and bakes with 4. She sells the rest at $2. "
    "How much does she make?"
)
GOLDEN = [
    "Step 1: She sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.",
    "Step 2: She makes 9 * 2 = <<9*2=18>>18 dollars.",
    "The answer is: 18",
]


def rows_of(distiset: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in distiset["default"]["train"]]


# -- prompts ----------------------------------------------------------------------------------


def test_the_system_prompt_holds_the_rules_and_examples() -> None:
    (system, user) = MathShepherdGenerator(llm=OfflineLLM()).format_input({"instruction": PROBLEM})
    assert system["role"] == "system"
    assert system["content"] == (
        SYSTEM_PROMPT.replace("{{ extra_rules }}", RULES_GSM8K)
        .replace("{{ few_shots }}", FEW_SHOTS_GSM8K)
        .replace("{{ structured_prompt }}", "")
    )
    assert system["content"].startswith(
        "You are a math tutor who solves word problems step by step."
    )
    assert "- Use * for multiplication" in system["content"]
    assert "Step 3: He has 120 - 45 = <<120-45=75>>75 pages left." in system["content"]
    assert user == {"role": "user", "content": f"Problem: {PROBLEM}"}


def test_candidate_solutions_prompt() -> None:
    task = MathShepherdGenerator(
        llm=OfflineLLM(), M=3, extra_rules=RULES_MATH, few_shots=FEW_SHOTS_MATH
    )
    system, user = task.format_input({"instruction": "Solve $x+1=2$."})
    assert "- Write mathematics in LaTeX between $ signs." in system["content"]
    assert user["content"] == (
        "Write 3 different solutions to the problem below, each complete and in the format "
        "described, separated by a line with only ---. Vary the approach; a solution may turn "
        "out wrong.\n\nProblem: Solve $x+1=2$."
    )
    assert task.outputs == ["solutions", "model_name"]
    assert MathShepherdGenerator(llm=OfflineLLM()).outputs == ["golden_solution", "model_name"]


def test_a_users_jinja_style_system_prompt_is_filled_and_none_sends_none() -> None:
    task = MathShepherdGenerator(
        llm=OfflineLLM(),
        system_prompt="Rules:\n{{extra_rules}}Shots:{{ few_shots }}",
        extra_rules="- be brief\n",
        few_shots=None,
    )
    assert task.format_input({"instruction": "q"})[0]["content"] == "Rules:\n- be brief\nShots:"
    bare = MathShepherdGenerator(llm=OfflineLLM(), system_prompt=None)
    assert bare.format_input({"instruction": "q"}) == [{"role": "user", "content": "Problem: q"}]


def test_structured_output_asks_for_json() -> None:
    task = MathShepherdGenerator(llm=OfflineLLM(), M=2, use_default_structured_output=True)
    assert (
        "Answer with JSON only: a list with one object per solution"
        in (task.format_input({"instruction": "q"})[0]["content"])
    )


def test_completer_prompt_continues_the_given_steps() -> None:
    task = MathShepherdCompleter(llm=OfflineLLM(), system_prompt=None)
    (user,) = task.format_input(
        {"instruction": "Add 2 and 3, then double.", "steps": ["Step 1: 2 + 3 = 5."]}
    )
    assert user["content"] == (
        "Problem: Add 2 and 3, then double.\n\n"
        "The first steps of a solution:\nStep 1: 2 + 3 = 5.\n\n"
        "Continue this solution from Step 2 to the final answer, without repeating or changing "
        "the steps above."
    )


# -- reading solutions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Step 1: She sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\n"
        "Step 2: She makes 9 * 2 = <<9*2=18>>18 dollars.\nThe answer is: 18",
        "Sure! Here's the solution:\n\n**Step 1:** She sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\n"
        "**Step 2:** She makes 9 * 2 =\n<<9*2=18>>18 dollars. The answer is: **18**.",
        "### Step 1. She sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\n"
        "### Step 2. She makes 9 * 2 = <<9*2=18>>18 dollars.\n\nFinal answer: $\\boxed{18}$",
    ],
)
def test_reads_steps_and_the_answer(text: str) -> None:
    assert solution_steps(text) == GOLDEN


def test_unlabelled_lines_become_steps() -> None:
    assert solution_steps("1. Add: 2 + 3 = 5.\n2) Double: 10.\nThe answer is 10") == [
        "Step 1: Add: 2 + 3 = 5.",
        "Step 2: Double: 10.",
        "The answer is: 10",
    ]


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("so the total is \\boxed{\\frac{3}{4}}.", "\\frac{3}{4}"),
        ("The final answer is: 1,000 dollars.", "1,000 dollars"),
        ("No conclusion here.", None),
    ],
)
def test_final_answers(text: str, answer: str | None) -> None:
    assert final_answer(text) == answer


def test_golden_solution_from_the_generator() -> None:
    task = MathShepherdGenerator(llm=OfflineLLM())
    answer = "Here you go.\n\n" + "\n".join(GOLDEN)
    assert task.format_output(answer, {"instruction": PROBLEM}) == {"golden_solution": GOLDEN}


@pytest.mark.parametrize(
    "answer",
    [
        "Step 1: 9 eggs.\nThe answer is: 18\n---\nStep 1: 16 - 7 = 9.\nStep 2: 9 * 2 = 18.\n"
        "The answer is: 18\n---\nStep 1: 16 * 2 = 32.\nThe answer is: 32",
        "Solution 1:\nStep 1: 9 eggs.\nThe answer is: 18\n\nSolution 2:\nStep 1: 16 - 7 = 9.\n"
        "Step 2: 9 * 2 = 18.\nThe answer is: 18\n\n**Solution 3:**\nStep 1: 16 * 2 = 32.\n"
        "The answer is: 32",
        '```json\n[{"solution": "Step 1: 9 eggs.\\nThe answer is: 18"}, {"solution": "Step 1: '
        '16 - 7 = 9.\\nStep 2: 9 * 2 = 18.\\nThe answer is: 18"}, {"solution": "Step 1: 16 * 2 '
        '= 32.\\nThe answer is: 32"}]\n```',
    ],
)
def test_candidate_solutions_from_the_generator(answer: str) -> None:
    task = MathShepherdGenerator(llm=OfflineLLM(), M=3, use_default_structured_output=True)
    assert task.format_output(answer, {"instruction": PROBLEM}) == {
        "solutions": [
            ["Step 1: 9 eggs.", "The answer is: 18"],
            ["Step 1: 16 - 7 = 9.", "Step 2: 9 * 2 = 18.", "The answer is: 18"],
            ["Step 1: 16 * 2 = 32.", "The answer is: 32"],
        ]
    }


def test_more_solutions_than_m_are_cut_and_unfinished_ones_left_out() -> None:
    task = MathShepherdGenerator(llm=OfflineLLM(), M=1)
    answer = "Step 1: thinking...\n---\nStep 1: 9.\nThe answer is: 9\n---\nThe answer is: 7"
    assert task.format_output(answer, {}) == {"solutions": [["Step 1: 9.", "The answer is: 9"]]}


@pytest.mark.parametrize(
    "answer",
    [None, "", "I'm sorry, I can't solve that.", "Step 1: 16 - 7 = 9.\nStep 2: hmm", "---\n---"],
)
def test_answers_without_a_final_answer_raise_output_parse_error(answer: str | None) -> None:
    with pytest.raises(OutputParseError):
        MathShepherdGenerator(llm=OfflineLLM(), M=2).format_output(answer, {})


# -- the completer ----------------------------------------------------------------------------

RIGHT = ["Step 1: She sells 9 eggs.", "Step 2: 9 * 2 = 18.", "The answer is: 18"]
WRONG_AT_2 = [
    "Step 1: She sells 9 eggs.",
    "Step 2: 9 * 3 = 27 (wrong).",
    "Step 3: So 27.",
    "The answer is: 27",
]


def continuing(messages: list[dict[str, str]]) -> list[str]:
    """Two continuations per prompt: reach 18 unless a step shown was wrong (then one of the
    two still does when only the first step is shown)."""
    shown = messages[-1]["content"]
    if "(wrong)" in shown:
        return ["Step 4: So 27.\nThe answer is: 27", "The answer is: 27"]
    return ["Step 2: 9 * 2 = 18.\nThe answer is: 18", "I am not sure."]


def test_hard_estimation_labels_each_step() -> None:
    completer = MathShepherdCompleter(name="label", llm=FunctionLLM(fn=continuing), N=2)
    solutions = [RIGHT, WRONG_AT_2, [], ["The answer is: 27"]]
    row = {"instruction": PROBLEM, "golden_solution": GOLDEN, "solutions": solutions}
    completer.load()
    import anyio

    (out,) = anyio.run(completer.process_row, row)
    assert out["solutions"] == [
        ["Step 1: She sells 9 eggs. +", "Step 2: 9 * 2 = 18. The answer is: 18 +"],
        [
            "Step 1: She sells 9 eggs. +",
            "Step 2: 9 * 3 = 27 (wrong). -",
            "Step 3: So 27. The answer is: 27 -",
        ],
        [],
        ["The answer is: 27 -"],  # an answer alone is labelled as a last step
    ]
    assert out["model_name"] == "function-llm"
    assert "statistics_label" in out["synthflow_metadata"]


def test_custom_tags_and_an_answer_inside_the_last_step() -> None:
    completer = MathShepherdCompleter(
        llm=FunctionLLM(fn=lambda m: "The answer is: 18.0"), tags=["good", "bad"]
    )
    row = {
        "instruction": PROBLEM,
        "golden_solution": "Step 1: 9 eggs.\nStep 2: 18 dollars. The answer is: 18",
        "solutions": [["Step 1: 9 eggs.", "Step 2: 20 dollars. The answer is: 20"]],
    }
    import anyio

    (out,) = anyio.run(completer.process_row, row)
    assert out["solutions"] == [
        ["Step 1: 9 eggs. good", "Step 2: 20 dollars. The answer is: 20 bad"]
    ]


def test_math_shepherd_end_to_end() -> None:
    """Golden solution, candidates, labels, then one training row per solution."""

    def model(messages: list[dict[str, str]]) -> Any:
        content = messages[-1]["content"]
        if content.startswith("Write 2 different solutions"):
            return "\n".join(RIGHT) + "\n---\n" + "\n".join(WRONG_AT_2)
        if content.startswith("Problem:") and "first steps" not in content:
            return "\n".join(GOLDEN)
        return continuing(messages)

    @step(inputs=["solutions"], outputs=["solutions"])
    def ExpandSolutions(inputs: StepInput) -> Iterator[list[dict[str, Any]]]:
        yield [{**row, "solutions": s} for row in inputs for s in row["solutions"]]

    llm = FunctionLLM(fn=model)
    with Pipeline(name="math-shepherd") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": PROBLEM}])
        golden = MathShepherdGenerator(name="golden", llm=llm)
        candidates = MathShepherdGenerator(name="candidates", llm=llm, M=2)
        label = MathShepherdCompleter(name="label", llm=llm, N=2)
        trl = FormatPRM(name="prm", format="trl")
        load >> golden >> candidates >> label >> ExpandSolutions(name="expand") >> trl
    rows = rows_of(pipeline.run(use_cache=False, progress=False))
    assert [r["labels"] for r in rows] == [[True, True], [True, False, False]]
    assert rows[1]["completions"] == [
        "Step 1: She sells 9 eggs.",
        "Step 2: 9 * 3 = 27 (wrong).",
        "Step 3: So 27. The answer is: 27",
    ]
    assert rows[0]["prompt"] == PROBLEM and rows[0]["golden_solution"] == GOLDEN


def test_a_row_the_completer_cannot_label_fails_alone() -> None:
    with Pipeline(name="ms-fail") as pipeline:
        load = LoadDataFromDicts(
            data=[
                {
                    "instruction": "q",
                    "golden_solution": ["Step 1: no answer"],
                    "solutions": [RIGHT],
                },
                {"instruction": PROBLEM, "golden_solution": GOLDEN, "solutions": [RIGHT]},
            ]
        )
        load >> MathShepherdCompleter(name="label", llm=FunctionLLM(fn=continuing))
    rows = rows_of(pipeline.run(use_cache=False, progress=False))
    assert rows[0]["solutions"] is None
    assert re.match(
        r"label: ValueError: 'golden_solution' states no final answer", rows[0][ERROR_COLUMN]
    )
    assert rows[1]["solutions"][0][-1].endswith("+") and rows[1][ERROR_COLUMN] is None


# -- FormatPRM --------------------------------------------------------------------------------

LABELLED = ["Step 1: 9 eggs. +", "Step 2: 9 * 3 = 27. The answer is: 27 -"]


def test_format_prm_math_shepherd() -> None:
    (out,) = next(iter(FormatPRM().process([{"instruction": "Q?", "solutions": LABELLED}])))
    assert out["input"] == "Q? Step 1: 9 eggs. ки\nStep 2: 9 * 3 = 27. The answer is: 27 ки"
    assert out["label"] == "Q? Step 1: 9 eggs. +\nStep 2: 9 * 3 = 27. The answer is: 27 -"
    assert FormatPRM().outputs == ["input", "label"]


def test_format_prm_trl() -> None:
    formatter = FormatPRM(format="trl")
    (out,) = next(iter(formatter.process([{"instruction": "Q?", "solutions": LABELLED}])))
    assert {k: out[k] for k in formatter.outputs} == {
        "prompt": "Q?",
        "completions": ["Step 1: 9 eggs.", "Step 2: 9 * 3 = 27. The answer is: 27"],
        "labels": [True, False],
    }


def test_format_prm_passes_failed_rows_and_refuses_unlabelled_or_unexpanded_ones() -> None:
    formatter = FormatPRM(format="trl")
    (out,) = next(iter(formatter.process([{"instruction": "Q?", "solutions": None}])))
    assert (out["prompt"], out["completions"], out["labels"]) == (None, None, None)
    with pytest.raises(ValueError, match="step 1 of a solution ends with no tag"):
        next(iter(formatter.process([{"instruction": "Q?", "solutions": ["Step 1: x"]}])))
    with pytest.raises(TypeError, match="expand"):
        next(iter(formatter.process([{"instruction": "Q?", "solutions": [LABELLED]}])))


def test_round_trips_through_yaml_with_the_same_signature() -> None:
    with Pipeline(name="ms-yaml") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": PROBLEM}])
        gen = MathShepherdGenerator(
            name="candidates", llm=OfflineLLM(), M=4, extra_rules=RULES_MATH
        )
        label = MathShepherdCompleter(name="label", llm=OfflineLLM(), N=3, tags=["ok", "ko"])
        fmt = FormatPRM(name="prm", format="trl", step_token="<s>")
        load >> gen >> label >> fmt
    loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
    assert loaded.signature == pipeline.signature
    gen2, label2, fmt2 = (loaded.steps[n] for n in ("candidates", "label", "prm"))
    assert isinstance(gen2, MathShepherdGenerator) and (gen2.M, gen2.extra_rules) == (4, RULES_MATH)
    assert isinstance(label2, MathShepherdCompleter) and (label2.N, label2.tags) == (
        3,
        ["ok", "ko"],
    )
    assert isinstance(fmt2, FormatPRM) and fmt2.outputs == ["prompt", "completions", "labels"]
