"""Issue 8, the LLM layer: an answer without text is a failed call, never a value or a cache
entry; cache keys tie a sample to its row and endpoint; a full disk stops the calls.

Against a real HTTP server on 127.0.0.1 speaking OpenAI's chat completions (tests.servers.chat).
"""

from __future__ import annotations

import functools
import random
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import pytest

from synthflow.errors import DiskFullError, LLMEmptyAnswerError
from synthflow.llms.answers import EMPTY_ANSWER_ATTEMPTS
from synthflow.llms.base import GenerateOutput
from synthflow.llms.cache import ResponseCache, is_disk_full
from synthflow.llms.calls import LLMCalls, LLMCallStats
from synthflow.llms.openai import GroqLLM, OpenAILLM
from synthflow.pipeline import Pipeline
from synthflow.steps import LoadDataFromDicts
from synthflow.steps.tasks import ERROR_COLUMN, TextGeneration
from tests.helpers import run_texts
from tests.servers import RESET, FakeAPI, Reply, fake_api
from tests.servers.chat import answer_text, completion, scripted


def llm(api: FakeAPI, **kwargs: Any) -> OpenAILLM:
    return OpenAILLM(
        model="gpt-4o-mini", base_url=f"{api.url}/v1", api_key="sk-test", retry_backoff=0, **kwargs
    )


def rows_of(distiset: Any) -> list[dict[str, Any]]:
    return list(distiset["default"]["train"])


# -- an answer without text is a failed call ------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("filter", "blocked by a content filter (finish_reason 'content_filter')"),
        ("refusal", 'refused: "I can\'t help with that request."'),
    ],
)
def test_a_filtered_or_refused_answer_fails_its_row_is_not_cached_and_is_asked_again(
    kind: str, reason: str
) -> None:
    with fake_api(scripted(lambda prompt, nth: [kind] if prompt == "bad" else None)) as api:
        first = run_texts(llm(api), ["good", "bad"])
        second = run_texts(llm(api), ["good", "bad"])

    good, bad = rows_of(first)
    assert good["generation"] == answer_text("good", 0) and good[ERROR_COLUMN] is None
    assert bad["generation"] is None
    assert bad[ERROR_COLUMN] == (
        f"gen: LLMEmptyAnswerError: OpenAILLM returned no text for 1 of 1 generations: {reason} "
        "(not cached: a re-run asks again)"
    )
    stats = first.stats["gen"]
    assert (stats.rows_in, stats.rows_out, stats.errors, stats.llm.failures) == (2, 2, 1, 1)
    # Not retried (the same prompt would be refused again); the re-run asks again, and only it.
    assert api.prompt_counts() == {"good": 1, "bad": 2}
    assert rows_of(second)[1][ERROR_COLUMN] == bad[ERROR_COLUMN]
    assert second.stats["gen"].llm.cache_hits == 1


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_null_content_is_asked_again_only_while_sampling(temperature: float) -> None:
    with fake_api(scripted(lambda prompt, nth: ["null"] if nth == 0 else None)) as api:
        distiset = run_texts(
            llm(api, generation_kwargs={"temperature": temperature}), ["q"], use_cache=True
        )

    row = rows_of(distiset)[0]
    if temperature:
        assert row["generation"] == answer_text("q", 0, nth=1)
        assert api.prompt_counts() == {"q": 2}
        assert distiset.stats["gen"].llm.retries == 1
    else:  # the same request would give the same nothing
        assert row["generation"] is None
        assert "null content (finish_reason 'stop')" in row[ERROR_COLUMN]
        assert api.prompt_counts() == {"q": 1}


@pytest.mark.parametrize("use_cache", [True, False])
def test_empty_choices_fail_their_rows_and_no_row_vanishes(use_cache: bool) -> None:
    prompts = [f"p{i}" for i in range(300)]
    empty = {p for i, p in enumerate(prompts) if i % 20 == 7}

    with fake_api(scripted(lambda prompt, nth: [] if prompt in empty else None)) as api:
        distiset = run_texts(llm(api), prompts, run={"use_cache": use_cache})

    rows = rows_of(distiset)
    assert [r["instruction"] for r in rows] == prompts  # 300 in, 300 out
    failed = {r["instruction"] for r in rows if r[ERROR_COLUMN] is not None}
    assert failed == empty
    for row in rows:
        if row["instruction"] in empty:
            assert row["generation"] is None
            assert (
                "no text for 1 of 1 generations after 3 attempts: no choice returned"
                in (row[ERROR_COLUMN])
            )
        else:
            assert row["generation"] == answer_text(row["instruction"], 0)
    stats = distiset.stats["gen"]
    assert (stats.rows_in, stats.rows_out, stats.errors) == (300, 300, len(empty))
    assert stats.llm.failures == len(empty)
    counts = api.prompt_counts()
    assert all(counts[p] == (EMPTY_ANSWER_ATTEMPTS if p in empty else 1) for p in prompts)


def test_fewer_choices_than_asked_keeps_the_answers_and_asks_only_for_the_rest() -> None:
    # n=3: the first request gets 2 choices, the retry asks for the missing one.
    with fake_api(scripted(lambda prompt, nth: ["text", "text"] if nth == 0 else None)) as api:
        distiset = run_texts(llm(api), ["q"], num_generations=3, group_generations=True)

    assert rows_of(distiset)[0]["generation"] == [
        answer_text("q", 0),
        answer_text("q", 1),
        answer_text("q", 0, nth=1),
    ]
    assert [r.json.get("n", 1) for r in api.requests] == [3, 1]
    assert distiset.stats["gen"].llm.output_tokens == 15  # both attempts were billed


def test_one_empty_generation_of_several_requests_keeps_the_others_for_the_rerun() -> None:
    # Groq has no n: one request per generation. The second generation's request is filtered.
    seen: list[int] = []

    def decide(prompt: str, nth: int) -> list[str] | None:
        seen.append(nth)
        return ["filter"] if nth == 1 else None

    with fake_api(scripted(decide)) as api:
        groq = GroqLLM(model="llama", base_url=api.url, api_key="k", retry_backoff=0)
        first = run_texts(groq, ["q"], num_generations=3, group_generations=True)
        assert api.prompt_counts() == {"q": 3}
        second = run_texts(groq, ["q"], num_generations=3, group_generations=True)

    row = rows_of(first)[0]
    assert row["generation"] is None
    assert (
        "returned no text for 1 of 3 generations: blocked by a content filter"
        in (row[ERROR_COLUMN])
    )
    # The two answers that came were cached: the re-run asks for one generation only.
    assert api.prompt_counts() == {"q": 4}
    assert second.stats["gen"].llm.cache_hits == 2
    assert len(rows_of(second)[0]["generation"]) == 3


def test_a_connection_reset_is_retried_and_the_row_succeeds() -> None:
    with fake_api(scripted(lambda prompt, nth: RESET if nth == 0 else None)) as api:
        distiset = run_texts(llm(api), ["q"])
    assert rows_of(distiset)[0]["generation"] == answer_text("q", 0, nth=1)
    assert api.prompt_counts() == {"q": 2}


KINDS = ["text", "text", "text", "null", "filter", "refusal"]


def _expected(n: int, scripts: list[list[str]], sampling: bool) -> tuple[list[int], int, bool]:
    """A reference model of one call: (n of each request, generations with text, success)."""
    kept, asked = 0, []
    for attempt in range(EMPTY_ANSWER_ATTEMPTS):
        wanted = n - kept
        asked.append(wanted)
        got = scripts[attempt][:wanted] if attempt < len(scripts) else ["text"] * wanted
        kept += got.count("text")
        if kept == n:
            return asked, kept, True
        problems = [k for k in got if k != "text"] + ["missing"] * (wanted - len(got))
        if not all(p == "missing" or (p == "null" and sampling) for p in problems):
            break
    return asked, kept, False


def test_generated_cases_of_n_and_empty_choices_match_the_reference_model(tmp_path: Path) -> None:
    """Hundreds of calls with n in 1..4 whose choices are good, null, filtered, refused or left
    out, over up to three attempts: the requests sent, the outcome and what the cache keeps
    match a small reference model; a second call asks only for what was not kept."""
    rng = random.Random(8)
    script: dict[str, list[list[str]]] = {}

    def decide(prompt: str, nth: int) -> list[str] | None:
        attempts = script[prompt]
        return attempts[nth] if nth < len(attempts) else None

    with fake_api(scripted(decide)) as api, ResponseCache(tmp_path / "cache.sqlite") as cache:
        calls = LLMCalls(cache)
        for case in range(150):
            n = rng.randint(1, 4)
            temperature = rng.choice([0.0, 1.0])
            scripts = [
                [rng.choice(KINDS) for _ in range(rng.randint(0, n + 1))]
                for _ in range(rng.randint(0, 3))
            ]
            prompt = f"case {case}"
            script[prompt] = scripts
            client = llm(api, generation_kwargs={"temperature": temperature})
            asked, kept, success = _expected(n, scripts, sampling=temperature > 0)
            before = len(api.requests)

            result = _call(calls, client, prompt, n)

            sent = [r.json.get("n", 1) for r in api.requests[before:]]
            assert sent == asked, (case, n, temperature, scripts)
            if success:
                assert isinstance(result, GenerateOutput)
                assert len(result.generations) == n and None not in result.generations
                continue
            assert isinstance(result, LLMEmptyAnswerError), (case, scripts)
            # Asked again (as a re-run would), only the generations not kept are requested.
            script[prompt] = []
            before = len(api.requests)
            again = _call(calls, client, prompt, n)
            assert isinstance(again, GenerateOutput) and None not in again.generations
            assert [r.json.get("n", 1) for r in api.requests[before:]] == [n - kept]


def _call(
    calls: LLMCalls, client: OpenAILLM, prompt: str, n: int, owner: Any = ("gen", 0)
) -> GenerateOutput | Exception:
    """One call through the run's call path; its error is returned rather than raised."""

    async def go() -> GenerateOutput | Exception:
        try:
            return await calls.generate(
                client, [{"role": "user", "content": prompt}], n, LLMCallStats(), owner=owner
            )
        except (LLMEmptyAnswerError, DiskFullError) as exc:
            return exc
        finally:
            await client.aclose()

    return anyio.run(go)


# -- cache keys: a sample belongs to its row and its endpoint --------------------------------


def _same_prompt_four_times(api: FakeAPI, **task: Any) -> Any:
    return run_texts(
        llm(api, generation_kwargs={"temperature": 1.0}), ["same"] * 4, concurrency=1, **task
    )


def test_identical_prompts_in_different_rows_are_separate_samples() -> None:
    with fake_api(scripted(lambda prompt, nth: None)) as api:
        distiset = _same_prompt_four_times(api)
        again = _same_prompt_four_times(api)

    generations = [r["generation"] for r in rows_of(distiset)]
    assert generations == [answer_text("same", 0, nth) for nth in range(4)]
    assert distiset.stats["gen"].llm.cache_hits == 0
    # Re-running the finished pipeline pays nothing, and each row keeps its own sample.
    assert api.prompt_counts() == {"same": 4}
    assert [r["generation"] for r in rows_of(again)] == generations
    assert (again.stats["gen"].llm.requests, again.stats["gen"].llm.cache_hits) == (0, 4)


def test_cache_scope_prompt_shares_one_answer_between_identical_prompts() -> None:
    with fake_api(scripted(lambda prompt, nth: None)) as api:
        distiset = _same_prompt_four_times(api, cache_scope="prompt")

    assert [r["generation"] for r in rows_of(distiset)] == [answer_text("same", 0)] * 4
    stats = distiset.stats["gen"].llm
    assert (stats.requests, stats.cache_hits) == (1, 3)
    assert api.prompt_counts() == {"same": 1}


def test_two_tasks_with_the_same_prompt_each_ask_for_their_own_answer() -> None:
    with fake_api(scripted(lambda prompt, nth: None)) as api, Pipeline(name="two") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": "q"}])
        load >> TextGeneration(name="first", llm=llm(api))
        load >> TextGeneration(name="second", llm=llm(api))
        pipeline.run(progress=False)
    assert api.prompt_counts() == {"q": 2}


def test_another_server_from_openai_base_url_gets_the_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler = scripted(lambda prompt, nth: None)
    with fake_api(handler) as first, fake_api(handler) as second:
        client = OpenAILLM(model="gpt-4o-mini", api_key="sk-test", retry_backoff=0)
        monkeypatch.setenv("OPENAI_BASE_URL", f"{first.url}/v1")
        run_texts(client, ["a", "b"])
        monkeypatch.setenv("OPENAI_BASE_URL", f"{second.url}/v1")
        run_texts(client, ["a", "b"])
        monkeypatch.setenv("OPENAI_BASE_URL", f"{first.url}/v1")
        run_texts(client, ["a", "b"])  # back to the first: its answers are still cached

    assert first.prompt_counts() == {"a": 1, "b": 1}
    assert second.prompt_counts() == {"a": 1, "b": 1}


# -- a full disk stops the calls ---------------------------------------------------------------


class _FillsUp(sqlite3.Connection):
    """A real SQLite connection whose commits fail as on a full disk once ``room`` is spent."""

    room = 0

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT":
            if type(self).room <= 0:
                error = sqlite3.OperationalError("database or disk is full")
                error.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
                raise error
            type(self).room -= 1
        return super().execute(sql, *args)


def test_a_full_disk_stops_new_requests_and_counts_the_lost_answers(tmp_path: Path) -> None:
    _FillsUp.room = 2
    path = tmp_path / "llm-cache.sqlite"
    connect = functools.partial(sqlite3.connect, factory=_FillsUp)

    with (
        fake_api(scripted(lambda p, n: None)) as api,
        ResponseCache(path, connect=connect) as cache,
    ):
        calls = LLMCalls(cache)
        assert isinstance(_call(calls, llm(api), "a", 1, ("gen", 0)), GenerateOutput)
        assert isinstance(_call(calls, llm(api), "b", 1, ("gen", 1)), GenerateOutput)

        full = _call(calls, llm(api), "c", 2, ("gen", 2))
        assert isinstance(full, DiskFullError)
        assert full.path == str(path)
        message = str(full)
        assert "\n" not in message
        assert f"no space left to write {path}" in message
        assert "2 answers received could not be stored (lost" in message
        assert "run the pipeline again to resume" in message
        assert api.prompt_counts() == {"a": 1, "b": 1, "c": 1}

        # Stopped: no new request starts.
        later = _call(calls, llm(api), "d", 1, ("gen", 3))
        assert isinstance(later, DiskFullError) and str(later) == message
        assert api.prompt_counts() == {"a": 1, "b": 1, "c": 1}
        assert calls.lost_answers == 2


def test_answers_still_arriving_after_the_disk_filled_are_reported_lost(tmp_path: Path) -> None:
    _FillsUp.room = 0
    connect = functools.partial(sqlite3.connect, factory=_FillsUp)

    async def two_in_flight(calls: LLMCalls, client: OpenAILLM) -> list[Exception]:
        errors: list[Exception] = []

        async def one(prompt: str, row: int) -> None:
            try:
                await calls.generate(
                    client,
                    [{"role": "user", "content": prompt}],
                    1,
                    LLMCallStats(),
                    owner=("gen", row),
                )
            except DiskFullError as exc:
                errors.append(exc)

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(one, "fast", 0)
                tg.start_soon(one, "slow", 1)
        finally:
            await client.aclose()
        return errors

    def decide(prompt: str, nth: int) -> Any:
        # "slow" is answered after "fast" has found the disk full.
        return functools.partial(completion, delay=0.3) if prompt == "slow" else None

    with (
        fake_api(scripted(decide)) as api,
        ResponseCache(tmp_path / "c.sqlite", connect=connect) as cache,
    ):
        calls = LLMCalls(cache)
        first, second = anyio.run(two_in_flight, calls, llm(api))

    # The first error raised is the one a run reports: its count includes the later loss.
    assert "2 answers received could not be stored" in str(first)
    assert "2 answers received could not be stored" in str(second)
    assert calls.lost_answers == 2


def test_disk_full_errors_are_recognised() -> None:
    assert is_disk_full(OSError(28, "No space left on device"))
    assert is_disk_full(OSError(122, "Disk quota exceeded"))
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))
    assert not is_disk_full(OSError(13, "Permission denied"))
    assert not is_disk_full(sqlite3.OperationalError("database is locked"))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 192 KiB tmpfs, where the machine lets the tests mount one (root on Linux)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"can't mount a tmpfs here: {done.stderr.decode().strip() or 'not root'}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_full_disk_stops_the_calls_and_a_rerun_pays_only_for_the_lost(
    small_disk: Path,
) -> None:
    big = "x" * 8000  # each answer takes two pages or so: the disk fills after a few dozen

    def decide(prompt: str, nth: int) -> Reply:
        return Reply(
            body={
                "choices": [{"index": 0, "message": {"content": f"{prompt} {big}"}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            }
        )

    prompts = [f"row {i}" for i in range(200)]
    path = small_disk / "llm-cache.sqlite"
    with fake_api(scripted(decide)) as api:
        with ResponseCache(path) as cache:
            calls = LLMCalls(cache)
            results = [_call(calls, llm(api), p, 1, ("gen", i)) for i, p in enumerate(prompts)]
        stored = sum(isinstance(r, GenerateOutput) for r in results)
        full = results[stored]
        assert 0 < stored < len(prompts)
        assert isinstance(full, DiskFullError) and full.path == str(path)
        assert "1 answer received could not be stored" in str(full)
        assert all(isinstance(r, DiskFullError) for r in results[stored:])
        assert len(api.requests) == stored + 1  # nothing was asked after the disk filled

        # Space freed: a re-run pays for the lost answer and the rows never asked, only.
        subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
        before = len(api.requests)
        with ResponseCache(path) as cache:
            calls = LLMCalls(cache)
            again = [_call(calls, llm(api), p, 1, ("gen", i)) for i, p in enumerate(prompts)]
        assert all(isinstance(r, GenerateOutput) for r in again)
        assert len(api.requests) - before == len(prompts) - stored


def test_a_pipeline_stops_asking_once_its_cache_disk_is_full(small_disk: Path) -> None:
    big = "x" * 8000

    def decide(prompt: str, nth: int) -> Reply:
        message = {"content": f"{prompt} {big}"}
        return Reply(body={"choices": [{"index": 0, "message": message}], "usage": {}})

    with fake_api(scripted(decide)) as api:
        with Pipeline(name="disk", cache_dir=small_disk) as pipeline:
            load = LoadDataFromDicts(data=[{"instruction": f"row {i}"} for i in range(200)])
            load >> TextGeneration(name="gen", llm=llm(api), concurrency=4)
        # The run ends with one error naming the full path, whichever write hit it first.
        with pytest.raises(DiskFullError, match=str(small_disk)):
            pipeline.run(progress=False)

    cache = f"file:{pipeline.run_dir / 'llm-cache.sqlite'}?mode=ro"
    with closing(sqlite3.connect(cache, uri=True)) as db:
        stored = db.execute("SELECT count(*) FROM generations").fetchone()[0]
    # Only the calls in flight when the disk filled were paid for and lost.
    assert 0 < stored < len(api.requests) <= stored + 4
