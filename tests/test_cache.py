from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from synthflow.models.callpath.cache import CachedGeneration, ResponseCache

MESSAGES = [{"role": "user", "content": "Name a prime."}]
KWARGS = {"temperature": 0.7, "max_new_tokens": 64}
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}}
REQUEST: dict[str, Any] = {
    "provider": "openai",
    "model": "gpt-4o-mini",
    "messages": MESSAGES,
    "generation_kwargs": KWARGS,
    "schema": SCHEMA,
    "index": 0,
}


def key(**changes: Any) -> str:
    return ResponseCache.key(**{**REQUEST, **changes})


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[ResponseCache]:
    cache = ResponseCache(tmp_path / "cache.db")
    yield cache
    cache.close()


def test_round_trip(cache: ResponseCache) -> None:
    stored = {
        key(index=0): CachedGeneration("7", [{"token": "7", "logprob": -0.1}], 12, 1, 1.5),
        key(index=1): CachedGeneration("", None, 12, 0, 2.5),  # empty text is still text
    }
    cache.put_many(list(stored.items()))

    assert cache.get_many([*stored, key(index=2)]) == stored
    assert cache.get_many([]) == {}


def test_a_generation_without_text_is_never_stored(cache: ResponseCache) -> None:
    items = [(key(index=0), CachedGeneration("a")), (key(index=1), CachedGeneration(None))]

    with pytest.raises(ValueError, match="never cached"):
        cache.put_many(items)

    assert cache.get_many([k for k, _ in items]) == {}


def test_a_null_text_an_older_version_stored_is_not_served(cache: ResponseCache) -> None:
    with closing(sqlite3.connect(cache.path)) as other, other:
        other.execute("INSERT INTO generations VALUES (?, NULL, NULL, 1, 0, 0.0)", (key(index=0),))

    assert cache.get_many([key(index=0)]) == {}


def test_put_replaces_an_existing_entry(cache: ResponseCache) -> None:
    cache.put_many([(key(), CachedGeneration("old"))])
    cache.put_many([(key(), CachedGeneration("new"))])

    assert cache.get_many([key()])[key()].text == "new"


def test_many_keys_at_once(cache: ResponseCache) -> None:
    keys = ResponseCache.keys("openai", "m", MESSAGES, KWARGS, None, range(1200))
    cache.put_many([(k, CachedGeneration(str(i))) for i, k in enumerate(keys)])

    found = cache.get_many(keys)

    assert len(found) == 1200
    assert found[keys[1199]].text == "1199"


def test_each_generation_index_has_its_own_key(cache: ResponseCache) -> None:
    cache.put_many([(key(index=i), CachedGeneration(f"g{i}")) for i in range(2)])
    wanted = [key(index=i) for i in range(4)]

    found = cache.get_many(wanted)

    # Raising num_generations from 2 to 4 leaves only the new two to generate.
    assert [k for k in wanted if k not in found] == wanted[2:]
    assert ResponseCache.keys("openai", "gpt-4o-mini", MESSAGES, KWARGS, SCHEMA, range(4)) == wanted


@pytest.mark.parametrize(
    "change",
    [
        {"provider": "anthropic"},
        {"model": "gpt-4o"},
        {"messages": [{"role": "user", "content": "Name a prime!"}]},
        {"messages": [*MESSAGES, {"role": "assistant", "content": "2"}]},
        {"generation_kwargs": {**KWARGS, "temperature": 0.8}},
        {"generation_kwargs": {**KWARGS, "seed": 1}},
        {"schema": None},
        {"schema": {**SCHEMA, "required": ["n"]}},
        {"index": 1},
        {"endpoint": "http://127.0.0.1:9/v1"},
        {"owner": ("gen", 0)},
    ],
    ids=lambda change: next(iter(change)),
)
def test_key_changes_with_each_input(change: dict[str, Any]) -> None:
    assert key(**change) != key()


def test_each_row_and_task_owns_its_samples() -> None:
    assert key(owner=("gen", 0)) != key(owner=("gen", 1))
    assert key(owner=("gen", 0)) != key(owner=("judge", 0))
    assert key(owner=("gen", 0)) == key(owner=["gen", 0])  # as JSON: a tuple is a list
    assert key(endpoint="http://a/v1") != key(endpoint="http://b/v1")


def test_key_is_stable_and_ignores_dict_order() -> None:
    reordered = {"max_new_tokens": 64, "temperature": 0.7}
    messages = [{"content": "Name a prime.", "role": "user"}]

    assert key(generation_kwargs=reordered, messages=messages) == key()
    assert len(key()) == 64
    int(key(), 16)


def test_entries_persist_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "cache.db"
    with ResponseCache(path) as cache:
        cache.put_many([(key(), CachedGeneration("kept", {"top": [1, 2]}, 3, 4, 5.0))])

    with ResponseCache(path) as reopened:
        assert reopened.get_many([key()]) == {
            key(): CachedGeneration("kept", {"top": [1, 2]}, 3, 4, 5.0)
        }


def test_database_is_in_wal_mode(cache: ResponseCache) -> None:
    cache.put_many([(key(), CachedGeneration("x"))])

    with closing(sqlite3.connect(cache.path)) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert cache.path.with_name("cache.db-wal").exists()


def test_a_closed_cache_refuses_use(cache: ResponseCache) -> None:
    cache.close()
    cache.close()

    with pytest.raises(RuntimeError, match="closed"):
        cache.get_many([key()])
    with pytest.raises(RuntimeError, match="closed"):
        cache.put_many([(key(), CachedGeneration("x"))])


def test_a_failed_put_stores_nothing(cache: ResponseCache) -> None:
    items = [(key(index=0), CachedGeneration("a")), (key(index=1), CachedGeneration("b"))]
    items.append((key(index=2), CachedGeneration("c", input_tokens=None)))  # type: ignore[arg-type]

    with pytest.raises(sqlite3.IntegrityError):
        cache.put_many(items)

    assert cache.get_many([k for k, _ in items]) == {}
