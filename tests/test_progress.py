"""Live progress: rows out counted as they leave a step, failed and filtered rows, totals and ETA
where the source size is known, LLM calls in flight, tokens and cost; the pipeline's name on every
line and in the table's title; a table updated in place in a notebook without ipywidgets; and,
at the end, where the run's data is."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from synthflow.errors import StepError
from synthflow.models.llms import OpenAILLM
from synthflow.pipeline import Pipeline, _progress, _progress_view
from synthflow.steps import GlobalStep, LoadDataFromDicts, Step, StepInput
from synthflow.steps.base import Row
from synthflow.steps.tasks import TextGeneration
from synthflow.testing import FunctionLLM, OfflineLLM
from tests.servers import Request, fake_api
from tests.servers.chat import completion


def one_slow_row(slow: str, seconds: float) -> FunctionLLM:
    """Answers at once, except the prompt ``slow``, which takes ``seconds``."""

    async def fn(messages: list[dict[str, Any]]) -> str:
        prompt = str(messages[-1]["content"])
        if prompt == slow:
            await anyio.sleep(seconds)
        return f"answer to {prompt}"

    return FunctionLLM(fn=fn)


def ten_rows(llm: FunctionLLM, name: str = "live") -> Pipeline:
    with Pipeline(name=name) as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": f"q{i}"} for i in range(10)])
        load >> TextGeneration(name="gen", llm=llm, concurrency=10)
    return pipeline


def test_plain_lines_count_rows_out_as_they_leave_and_name_the_pipeline(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_progress, "PLAIN_INTERVAL", 0.05)
    # Nine rows are answered at once; the tenth keeps the step running for a second.
    ten_rows(one_slow_row("q9", 1.0)).run(progress="plain")

    lines = capsys.readouterr().err.strip().splitlines()
    progress = [line for line in lines if ": in=" in line]
    assert progress and all(re.match(r"\[synthflow live +\d+\.\ds\] ", line) for line in progress)
    # While the slow row is in flight the step has already put nine rows out, of ten.
    during = [line for line in progress if " gen: in=10 out=9/10 " in line]
    assert during, "\n".join(progress)
    assert all(re.search(r" eta=\d+s", line) for line in during)
    # (any: the slow call may start a moment after the nine others have ended)
    assert any(" in_flight=1 " in line for line in during)
    assert " load: in=0 out=10/10 failed=0 " in progress[-2]
    assert " gen: in=10 out=10/10 failed=0 " in progress[-1] and " eta=0s" in progress[-1]


def test_the_rich_table_is_titled_with_the_pipeline_and_shows_totals(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    ten_rows(one_slow_row("q9", 0.0), name="titled").run(progress="rich")

    table = capsys.readouterr().err
    assert re.search(r"titled — \d+\.\ds", table)
    gen = next(line for line in table.splitlines() if " gen " in line)
    assert " 10/10 " in gen


class Total(GlobalStep):
    @property
    def inputs(self) -> list[str]:
        return ["n"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        yield [{"n": sum(row["n"] for row in inputs)}]


class Double(Step):
    @property
    def inputs(self) -> list[str]:
        return ["n"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        for row in inputs:
            row["n"] *= 2
        yield inputs


def test_totals_follow_the_sources_until_a_global_step() -> None:
    with Pipeline(name="totals") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"n": i} for i in range(10)])
        load >> Double(name="double") >> Total(name="total") >> Double(name="after")
    stats = pipeline.run(progress=False).stats

    assert {name: s.rows_total for name, s in stats.items()} == {
        "load": 10,
        "double": 10,
        "total": 10,
        "after": None,  # a global step may make any number of rows
    }
    assert stats["load"].source and not stats["double"].source


def test_a_dataset_given_to_run_has_a_known_size() -> None:
    with Pipeline(name="fed") as pipeline:
        Double(name="double")
    stats = pipeline.run(dataset=[{"n": i} for i in range(7)], progress=False).stats
    assert stats["double"].rows_total == 7 and stats["double"].rows_out == 7


CUT_AT: list[int] = []


class PowerCut(Step):
    @property
    def inputs(self) -> list[str]:
        return ["n"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        if any(row["n"] in CUT_AT for row in inputs):
            raise RuntimeError("power cut")
        yield inputs


def test_a_resumed_run_expects_only_the_rows_left() -> None:
    with Pipeline(name="resumed") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"n": i} for i in range(50)], batch_size=5)
        load >> PowerCut(name="work", input_batch_size=5, on_error="fail")
    CUT_AT[:] = [30]
    try:
        with pytest.raises(StepError):
            pipeline.run(progress=False)
    finally:
        CUT_AT.clear()
    stats = pipeline.run(progress=False).stats
    assert 0 < stats["load"].rows_total == stats["load"].rows_out < 50  # type: ignore[operator]


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.2, "0s"), (42, "42s"), (61, "1m01s"), (3600 * 2 + 300, "2h05m")]
)
def test_durations_read_at_a_glance(seconds: float, text: str) -> None:
    assert _progress_view.format_duration(seconds) == text


class SlowLastBatch(Step):
    """Passes rows on in batches of two; the batch holding ``n == 9`` takes a second."""

    @property
    def inputs(self) -> list[str]:
        return ["n"]

    async def process(self, inputs: StepInput) -> AsyncIterator[list[Row]]:
        if any(row["n"] == 9 for row in inputs):
            await anyio.sleep(1.0)
        yield inputs


def test_a_batch_step_counts_its_rows_out_batch_by_batch(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_progress, "PLAIN_INTERVAL", 0.05)
    with Pipeline(name="batches") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"n": i} for i in range(10)], batch_size=2)
        load >> SlowLastBatch(name="work", input_batch_size=2)
    pipeline.run(progress="plain")

    lines = capsys.readouterr().err.splitlines()
    assert any(" work: in=10 out=8/10 " in line for line in lines), "\n".join(lines)


class KeepEven(Step):
    @property
    def inputs(self) -> list[str]:
        return ["n"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        yield [row for row in inputs if row["n"] % 2 == 0]


class Once(GlobalStep):
    """Keeps the first row of each ``n``."""

    @property
    def inputs(self) -> list[str]:
        return ["n"]

    def process(self, inputs: StepInput) -> Iterator[list[Row]]:
        seen: set[int] = set()
        kept = []
        for row in inputs:
            if row["n"] not in seen:
                seen.add(row["n"])
                kept.append(row)
        yield kept


def fails_on(prompts: set[str]) -> FunctionLLM:
    def fn(messages: list[dict[str, Any]]) -> str:
        prompt = str(messages[-1]["content"])
        if prompt in prompts:
            raise RuntimeError(f"no answer to {prompt}")
        return "fine"

    return FunctionLLM(fn=fn)


@pytest.mark.parametrize("on_error", ["null", "drop"])
def test_failed_and_filtered_rows_are_told_apart(on_error: str) -> None:
    rows = [{"n": n, "instruction": f"q{n}"} for n in (0, 1, 2, 2, 3, 4, 4, 6)]
    with Pipeline(name="sieve") as pipeline:
        load = LoadDataFromDicts(name="load", data=rows, batch_size=3)
        keep = KeepEven(name="even", input_batch_size=3)
        gen = TextGeneration(name="gen", llm=fails_on({"q4"}), on_error=on_error)
        load >> keep >> gen >> Once(name="once")
    stats = pipeline.run(progress=False).stats

    assert stats["even"].filtered == 2 and stats["even"].errors == 0  # 1 and 3
    assert stats["gen"].errors == 2 and stats["gen"].filtered == 0  # both rows of 4
    # 0, 2, 2, 4, 4, 6 go on, unless the failed 4s are dropped; then one 2 (and 4) is a repeat.
    assert stats["gen"].rows_out == (6 if on_error == "null" else 4)
    assert stats["once"].filtered == (2 if on_error == "null" else 1)
    assert stats["once"].errors == 0


def priced_answers(request: Request) -> Any:
    """Every prompt answered at once, except "q9", which takes a second."""
    slow = request.json["messages"][-1]["content"] == "q9"
    return completion(request, delay=1.0 if slow else 0.0)


def test_plain_lines_show_calls_in_flight_tokens_and_cost(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_progress, "PLAIN_INTERVAL", 0.05)
    with fake_api(priced_answers) as api:
        llm = OpenAILLM(model="m", base_url=f"{api.url}/v1", api_key="k", retry_backoff=0.01)
        ten_rows(llm, name="paid").run(progress="plain", prices={"m": (1.0, 2.0)})

    lines = capsys.readouterr().err.splitlines()
    # While the slow call is in flight, nine rows are out and their nine answers charged.
    # (A line may also fall between the slow answer being charged and its row leaving.)
    during = [line for line in lines if " gen: in=10 out=9/10 " in line and " in_flight=1 " in line]
    assert during, "\n".join(lines)
    # Nine answers of 10 prompt and 5 completion tokens: 9 * (10 * $1 + 5 * $2) / 1M.
    assert all(" tok=90+45 $0.0002" in line for line in during)


def test_the_end_of_a_run_says_where_its_data_is(capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = ten_rows(one_slow_row("", 0.0), name="where")
    distiset = pipeline.run(progress="plain")

    err = capsys.readouterr().err
    data = pipeline.run_dir / "data"
    assert f"[synthflow] where: data in {data}\n" in err
    assert len(distiset["default"]["train"]) == 10 and any(data.iterdir())

    pipeline.run(progress=False)
    assert "data in" not in capsys.readouterr().err  # a quiet run is quiet


class FakeDisplay:
    """``IPython.display`` as a Jupyter kernel has it: ``display(obj, display_id=True)``
    returns a handle whose ``update(obj)`` replaces what the cell shows."""

    def __init__(self) -> None:
        self.shown: list[Any] = []
        self.module = types.ModuleType("IPython.display")
        self.module.display = self.display  # type: ignore[attr-defined]

    def display(self, obj: Any, *, display_id: bool = False) -> Any:
        assert display_id is True, "progress must be updatable in place"
        self.shown.append(obj)
        return types.SimpleNamespace(update=self.shown.append)


@pytest.fixture
def jupyter(monkeypatch: pytest.MonkeyPatch) -> FakeDisplay:
    """A stand-in for a Jupyter kernel's IPython, without Jupyter (or ipywidgets) installed."""
    fake = FakeDisplay()
    ipython = types.ModuleType("IPython")
    kernel_shell = types.SimpleNamespace(kernel=object())
    ipython.get_ipython = lambda: kernel_shell  # type: ignore[attr-defined]
    ipython.display = fake.module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", fake.module)
    monkeypatch.delenv("CI", raising=False)
    return fake


def test_in_a_notebook_one_table_updates_in_place_and_stays_as_the_summary(
    jupyter: FakeDisplay, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = ten_rows(one_slow_row("q9", 1.0), name="nb")
    pipeline.run()  # progress="auto"

    assert capsys.readouterr().err == ""  # no warnings, no stray lines: all of it is in the cell
    shown = jupyter.shown
    assert len(shown) > 3
    during = [s for s in shown if any(row[:3] == ("gen", "10", "9/10") for row in s.rows)]
    assert during, [s.rows for s in shown]
    final = shown[-1]
    assert [row[:5] for row in final.rows] == [
        ("load", "0", "10/10", "0", "0"),
        ("gen", "10", "10/10", "0", "0"),
    ]
    html = final._repr_html_()
    assert "<b>nb — " in html and "<td" in html
    assert f"data in {pipeline.run_dir / 'data'}" in html
    text = repr(final)  # what a front end without HTML shows
    assert text.startswith("nb — ") and "rows out" in text and "data in" in text


def test_progress_auto_is_plain_lines_outside_a_terminal_or_notebook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert _progress.resolve_mode("auto") == "plain"  # pytest captures stderr: not a TTY
    assert _progress.resolve_mode("notebook") == "plain"  # no kernel runs this code


def test_progress_in_a_kernel_without_ipython_display_is_plain_lines(
    jupyter: FakeDisplay, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _progress.resolve_mode("auto") == "notebook"
    monkeypatch.setitem(sys.modules, "IPython.display", None)  # can't be imported
    assert _progress.resolve_mode("auto") == _progress.resolve_mode("notebook") == "plain"


def test_long_counts_read_at_a_glance() -> None:
    assert [_progress_view.format_count(n) for n in (950, 12_345, 4_500_000)] == [
        "950",
        "12.3k",
        "4.5M",
    ]


NOTEBOOK = """\
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import TextGeneration
from synthflow.testing import OfflineLLM

with Pipeline(name="in-a-notebook", cache_dir={cache!r}) as pipeline:
    load = LoadDataFromDicts(data=[{{"instruction": f"q{{i}}"}} for i in range(20)])
    load >> TextGeneration(name="gen", llm=OfflineLLM(latency=0.1), concurrency=2)
distiset = pipeline.run()
"""


@pytest.mark.notebook
@pytest.mark.timeout(120)
def test_a_real_notebook_shows_the_table_without_ipywidgets(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat", reason="needs the notebook extra")
    nbclient = pytest.importorskip("nbclient", reason="needs the notebook extra")
    pytest.importorskip("ipykernel", reason="needs the notebook extra")

    updates: list[str] = []

    class Client(nbclient.NotebookClient):  # type: ignore[misc]
        def process_message(self, msg: dict[str, Any], *args: Any) -> Any:
            if msg["msg_type"] == "update_display_data":
                updates.append(msg["content"]["data"]["text/plain"])
            return super().process_message(msg, *args)

    cell = nbformat.v4.new_code_cell(NOTEBOOK.format(cache=str(tmp_path / "cache")))
    notebook = nbformat.v4.new_notebook(cells=[cell])
    Client(notebook, timeout=90, kernel_name="python3").execute()

    outputs = notebook.cells[0].outputs
    streams = [o["text"] for o in outputs if o["output_type"] == "stream"]
    assert streams == [], streams  # no ipywidgets warning, nothing on stderr
    tables = [o for o in outputs if o["output_type"] == "display_data"]
    assert len(tables) == 1, outputs  # one table, updated in place
    html = tables[0]["data"]["text/html"]
    assert "in-a-notebook" in html and "20/20" in html and "data in " in html
    assert "rows out" in tables[0]["data"]["text/plain"]
    # It was updated in place while rows came out, not only drawn at the end.
    assert any(re.search(r"\bgen +\d+ +([1-9]|1\d)/20\b", text) for text in updates), updates


def test_a_cli_run_says_where_its_data_and_its_output_are(tmp_path: Path) -> None:
    with Pipeline(name="from-cli") as pipeline:
        load = LoadDataFromDicts(name="load", data=[{"instruction": "q"}])
        load >> TextGeneration(name="gen", llm=OfflineLLM())
    config = pipeline.save(tmp_path / "pipeline.yaml")
    out = tmp_path / "out"

    command = ["pipeline", "run", "--config", str(config), "--output", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "synthflow", *command],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )

    assert result.returncode == 0, result.stderr
    assert re.search(
        r"\[synthflow\] from-cli: data in \S+/pipelines/from-cli/\w+/data\n", result.stderr
    )
    assert f"saved to {out}" in result.stdout
