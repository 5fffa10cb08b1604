"""``@task``: a Task from a function that turns the LLM's answer into columns, with its prompts
declared in the function's docstring (distilabel's ``distilabel.steps.tasks.task``)::

    @task(inputs=["question"], outputs=["answer"])
    def Answer(output: str | None, input: dict[str, Any] | None = None) -> dict[str, Any]:
        '''Answers a question.

        ---
        system_prompt: You answer in one sentence.
        user_message_template: "Question: {question}"
        ---
        '''
        return {"answer": output}

The YAML block between the two ``---`` lines holds ``system_prompt`` and
``user_message_template``; ``{column}`` placeholders are filled from the row (``str.format``)
and may name only the task's inputs.
"""

from __future__ import annotations

import inspect
import re
import string
from collections.abc import Callable
from typing import Any, cast

from synthflow.models.llms.base import ChatType
from synthflow.steps.base import Row
from synthflow.steps.decorator import column_names
from synthflow.steps.tasks.base import Task

FormatOutput = Callable[..., dict[str, Any]]

_KEYS = ("system_prompt", "user_message_template")


def task(
    inputs: list[str] | dict[str, bool] | None = None,
    outputs: list[str] | dict[str, bool] | None = None,
) -> Callable[[FormatOutput], type[Task]]:
    """Make a Task class from ``func(output, input) -> columns`` and its docstring's prompts.

    ``outputs`` gets ``model_name`` added, as every task writes it. distilabel's ``{column:
    required}`` mappings are taken too; an optional input may appear in the prompts."""
    in_cols = column_names(inputs, required_only=True)
    out_cols = column_names(outputs)
    if "model_name" not in out_cols:
        out_cols.append("model_name")

    def decorator(func: FormatOutput) -> type[Task]:
        system_prompt, user_template = _prompts(func, column_names(inputs))

        def format_input(self: Task, row: Row) -> ChatType:
            return [
                {"role": "system", "content": system_prompt.format(**row)},
                {"role": "user", "content": user_template.format(**row)},
            ]

        def format_output(self: Task, output: str | None, row: Row) -> dict[str, Any]:
            return func(output, row)

        namespace: dict[str, Any] = {
            "__module__": func.__module__,
            "__qualname__": func.__qualname__,
            "__doc__": func.__doc__,
            "inputs": property(lambda self: list(in_cols)),
            "outputs": property(lambda self: list(out_cols)),
            "format_input": format_input,
            "format_output": format_output,
        }
        return cast("type[Task]", type(func.__name__, (Task,), namespace))

    return decorator


def _prompts(func: FormatOutput, inputs: list[str]) -> tuple[str, str]:
    """The system prompt and user message template declared in ``func``'s docstring."""
    from synthflow.errors import SerializationError
    from synthflow.pipeline_file import parse_text

    where = f"@task {func.__name__}"
    example = "a block between '---' lines with system_prompt: and user_message_template:"
    doc = inspect.getdoc(func)
    parts = (doc or "").split("---")
    if len(parts) != 3:
        raise ValueError(f"{where}: its docstring must hold the prompts as {example}")
    try:
        declared = parse_text(parts[1], "yaml", source="its docstring's prompt block")
    except SerializationError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if any(not isinstance(declared.get(k), str) for k in _KEYS):
        raise ValueError(f"{where}: its docstring must hold the prompts as {example}")
    prompts = [str(declared[k]).strip() for k in _KEYS]
    for key, prompt in zip(_KEYS, prompts, strict=True):
        unknown = sorted(set(_placeholders(prompt)) - set(inputs))
        if unknown:
            raise ValueError(
                f"{where}: {key} uses {', '.join('{' + u + '}' for u in unknown)}, which "
                f"{'is' if len(unknown) == 1 else 'are'} not among its inputs {inputs}; add "
                "them to inputs=[...] or write '{{' and '}}' for literal braces"
            )
    return prompts[0], prompts[1]


def _placeholders(template: str) -> list[str]:
    names = []
    for _text, field, _spec, _conversion in string.Formatter().parse(template):
        if field is not None:
            names.append(re.split(r"[.\[]", field, maxsplit=1)[0])
    return names
