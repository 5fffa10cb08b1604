"""MinHashDedup: near duplicates marked as rows stream through, standalone and in pipelines."""

from __future__ import annotations

import random
from typing import Any

import pytest

from synthflow.errors import StepError
from synthflow.pipeline import Pipeline
from synthflow.serialization import to_text
from synthflow.steps import LoadDataFromDicts, MinHashDedup

KEEP = "keep_row_after_minhash_filtering"


def rows_of(distiset: Any) -> list[dict[str, Any]]:
    return list(distiset["default"]["train"])


def keeps(step: MinHashDedup, texts: list[Any]) -> list[bool]:
    return [row[KEEP] for row in next(step.process([{"text": t} for t in texts]))]


def document(rng: random.Random, words: int = 300) -> list[str]:
    vocabulary = [f"w{i}" for i in range(5000)]
    return rng.choices(vocabulary, k=words)


def near_copy(rng: random.Random, words: list[str], changes: int) -> list[str]:
    copy = list(words)
    for at in rng.sample(range(len(copy)), changes):
        copy[at] = f"changed{rng.randrange(10**6)}"
    return copy


def test_the_example_of_distilabels_docs_in_a_pipeline() -> None:
    texts = [
        "This is a test document.",
        "This document is a test.",
        "Test document for duplication.",
        "Document for duplication test.",
        "This is another unique document.",
    ]
    with Pipeline(name="minhash") as pipeline:
        data = LoadDataFromDicts(data=[{"text": t} for t in texts] * 200, batch_size=500)
        dedup = MinHashDedup(tokenizer="words", threshold=0.9, storage="dict")
        data >> dedup

    rows = rows_of(pipeline.run(progress=False))
    assert len(rows) == 1000
    kept = [r["text"] for r in rows if r[KEEP]]
    # The first two hold the same words; the next two differ in case ("Test"/"test").
    assert kept == [texts[0], *texts[2:]]


def test_near_duplicates_with_a_few_words_changed_are_marked_and_others_kept() -> None:
    rng = random.Random(3)
    originals = [document(rng) for _ in range(150)]
    copies = [near_copy(rng, originals[i], changes=2) for i in range(0, 150, 5)]
    step = MinHashDedup()
    step.load()
    result = keeps(step, [" ".join(w) for w in originals + copies])
    assert result == [True] * 150 + [False] * 30


def test_rows_of_a_later_batch_are_compared_with_those_kept_before() -> None:
    rng = random.Random(5)
    first = [" ".join(document(rng)) for _ in range(20)]
    step = MinHashDedup()
    step.load()
    assert all(keeps(step, first))
    later = [first[3], " ".join(document(rng)), first[17].upper()]
    assert keeps(step, later) == [False, True, True]


def test_the_first_of_a_group_is_kept_and_a_dropped_row_drops_nothing_after_it() -> None:
    rng = random.Random(7)
    a = document(rng)
    b = near_copy(rng, a, changes=2)  # a near duplicate of a
    c = near_copy(rng, b, changes=2)  # near b, and near a too
    other = document(rng)
    step = MinHashDedup()
    step.load()
    assert keeps(step, [" ".join(x) for x in (a, other, b, c)]) == [True, True, False, False]


def test_character_ngrams_catch_a_changed_letter() -> None:
    rng = random.Random(11)
    text = " ".join(document(rng, 80))
    typo = text[:100] + "x" + text[101:]
    step = MinHashDedup(tokenizer="ngrams", n=5, threshold=0.8)
    step.load()
    assert keeps(step, [text, typo, " ".join(document(rng, 80))]) == [True, False, True]


def test_same_marks_on_every_run_and_empty_texts_are_duplicates_of_each_other() -> None:
    rng = random.Random(13)
    texts = [" ".join(document(rng, 50)) for _ in range(40)] + ["", "", "x"]
    runs = []
    for _ in range(2):
        step = MinHashDedup()
        step.load()
        runs.append(keeps(step, texts))
    assert runs[0] == runs[1]
    assert runs[0][-3:] == [True, False, True]


def test_null_texts_are_kept_and_compared_with_nothing() -> None:
    step = MinHashDedup()
    step.load()
    assert keeps(step, [None, "a b c", None, "a b c"]) == [True, True, True, False]


def test_one_line_errors() -> None:
    step = MinHashDedup()
    step.load()
    with pytest.raises(ValueError, match="'text' must hold text, got int"):
        keeps(step, [3])
    with pytest.raises(ValueError, match="no column 'text'"):
        next(step.process([{"body": "x"}]))
    with pytest.raises(ValueError, match="set workers=1"):
        MinHashDedup(workers=2)
    with pytest.raises(ValueError, match="needs n"):
        MinHashDedup(tokenizer="ngrams", n=None)


def test_a_bad_row_fails_the_run_naming_the_step() -> None:
    with Pipeline(name="bad") as pipeline:
        LoadDataFromDicts(data=[{"text": 1}]) >> MinHashDedup(name="dedup")
    with pytest.raises(StepError, match="step 'dedup'"):
        pipeline.run(progress=False)


def test_in_a_worker_process_with_a_mapped_column_and_yaml_round_trip() -> None:
    rng = random.Random(17)
    texts = [" ".join(document(rng, 100)) for _ in range(30)]
    data = [{"body": t} for t in texts + texts[:10]]
    with Pipeline(name="minhash-process") as pipeline:
        load = LoadDataFromDicts(data=data, batch_size=7)
        dedup = MinHashDedup(
            name="dedup", input_mappings={"text": "body"}, executor="process", input_batch_size=8
        )
        load >> dedup

    loaded = Pipeline.from_yaml(to_text(pipeline.dump(), "yaml"))
    assert loaded.signature == pipeline.signature
    rows = rows_of(loaded.run(progress=False))
    assert [r[KEEP] for r in rows] == [True] * 30 + [False] * 10
    assert "text" not in rows[0]
