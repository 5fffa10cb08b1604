"""MinHash signatures and an LSH index, vectorised with numpy, for ``MinHashDedup``.

A batch of texts becomes one array of code points; tokens (words, or character n-grams) are
found and hashed with array operations, never one Python call per token. A token's hash is a
polynomial over its code points modulo 2**64, finished with splitmix64 so every bit is mixed.
Each of the ``k`` MinHash permutations is ``x * a_k + b_k`` modulo 2**64 (a random odd ``a_k``),
and a document's signature is the minimum of each over its tokens.

LSH banding (Broder 1997; Indyk and Motwani 1998): the signature is cut into ``b`` bands of
``r`` values, and two documents are candidates when one band is equal. ``b`` and ``r`` are the
ones that minimise the area of false positives below ``threshold`` and false negatives above it
(the choice datasketch makes too). The index keeps one 64-bit key per band per kept document, in
sorted arrays, and nothing of the texts: 1M documents with 5 bands take 40 MB.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

_P = np.uint64(0x100000001B3)  # FNV's 64-bit prime: an odd base for the polynomial hash
_EMPTY_SIGNATURE = np.uint64(0xFFFFFFFFFFFFFFFF)  # a document without tokens
_CHUNK_TOKENS = 1 << 14  # tokens per permutation pass: 16k x 128 x 8 bytes = 16 MB

# Word tokenizer classes by code point: 0 separates tokens, 1 is part of a word, 2 is a token
# by itself (punctuation). Code points past the table are letters of other scripts: words.
_KIND = np.ones(0x3001, dtype=np.uint8)
for _c in range(128):
    _KIND[_c] = 0 if chr(_c).isspace() or _c < 32 else (1 if chr(_c).isalnum() or _c == 95 else 2)
_KIND[127:0xA0] = 0  # DEL and the C1 control characters
_KIND[0xA1:0xC0] = 2  # Latin-1 punctuation and symbols (\u00a7, \u00ab, \u00bf, ...)
_KIND[0xAA] = _KIND[0xB2] = _KIND[0xB3] = _KIND[0xB5] = _KIND[0xB9] = _KIND[0xBA] = 1
_KIND[[0xBC, 0xBD, 0xBE]] = 1
_KIND[[0xD7, 0xF7]] = 2
_KIND[0x2010:0x205F] = 2  # general punctuation: dashes, quotes, ellipsis
_KIND[[0x85, 0xA0, 0x1680, *range(0x2000, 0x200C), 0x2028, 0x2029, 0x202F, 0x205F]] = 0
_KIND[0x3000] = 0  # ideographic space

_GROUP_POINTS = 1 << 20  # code points hashed at once: bounds the working memory (~40 MB)


class _Powers:
    """P**i and P**-i modulo 2**64 for i < size, grown on demand (kept as one tuple, so a
    thread never sees one array grown and the other not)."""

    def __init__(self) -> None:
        empty = np.empty(0, dtype=np.uint64)
        self.arrays = (empty, empty)

    def get(self, size: int) -> tuple[U64, U64]:
        arrays = self.arrays
        if arrays[0].size < size:
            grown = max(size, 2 * arrays[0].size)
            up = np.full(grown, _P, dtype=np.uint64)
            down = np.full(grown, pow(int(_P), -1, 2**64), dtype=np.uint64)
            up[0] = down[0] = 1
            arrays = (np.cumprod(up, dtype=np.uint64), np.cumprod(down, dtype=np.uint64))
            self.arrays = arrays
        return arrays[0][:size], arrays[1][:size]


_POWERS = _Powers()


def splitmix64(x: U64) -> U64:
    """A bijective mixer of 64-bit values (Steele, Lea and Flood 2014), on a copy of ``x``."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def token_hashes(texts: list[str], tokenizer: str, n: int) -> tuple[U64, I64]:
    """The hashes of each text's tokens, all texts in one array, and the index where each
    text's tokens start (one more entry than texts, so text i has ``[bounds[i], bounds[i+1])``).

    ``tokenizer`` "words": runs of letters, digits and '_', and each punctuation mark;
    "ngrams": every run of ``n`` characters (none in a text shorter than ``n``)."""
    hashes: list[U64] = []
    counts: list[I64] = []
    start = 0
    while start < len(texts):
        stop, points = start, 0
        while stop < len(texts) and (stop == start or points + len(texts[stop]) <= _GROUP_POINTS):
            points += len(texts[stop]) + 1
            stop += 1
        group = texts[start:stop]
        h, bounds = _words(group) if tokenizer == "words" else _ngrams(group, n)
        hashes.append(h)
        counts.append(np.diff(bounds))
        start = stop
    bounds = np.zeros(len(texts) + 1, dtype=np.int64)
    if texts:
        np.cumsum(np.concatenate(counts), out=bounds[1:])
    return (np.concatenate(hashes) if hashes else np.empty(0, dtype=np.uint64)), bounds


def _code_points(texts: list[str], separator: str) -> tuple[npt.NDArray[np.uint32], I64, I64]:
    """The texts joined by ``separator`` as code points, where each text starts, and their
    lengths."""
    joined = separator.join(texts)
    points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    starts = np.zeros(len(texts), dtype=np.int64)
    np.cumsum(lengths[:-1] + len(separator), out=starts[1:])
    return points, starts, lengths


def _words(texts: list[str]) -> tuple[U64, I64]:
    points, starts, _ = _code_points(texts, " ")
    kind = _KIND[np.minimum(points, _KIND.size - 1)]
    word = kind == 1
    first_of_word = word.copy()
    first_of_word[1:] &= ~word[:-1]
    first = np.flatnonzero(first_of_word | (kind == 2))
    if first.size == 0:
        return np.empty(0, dtype=np.uint64), np.zeros(len(texts) + 1, dtype=np.int64)
    # A token's hash is sum(v_i * P**(i - start)); the segment from a token to the next one
    # also covers the separators after it, which count for nothing (v = 0).
    values = points.astype(np.uint64)
    values += np.uint64(1)
    values *= kind.astype(np.bool_)
    up, down = _POWERS.get(points.size)
    values *= up
    hashes = np.add.reduceat(values, first)
    hashes *= down[first]
    text_of = np.searchsorted(starts, first, side="right") - 1
    return splitmix64(hashes), _bounds(text_of, len(texts))


def _ngrams(texts: list[str], n: int) -> tuple[U64, I64]:
    points, _, lengths = _code_points(texts, "")
    windows = points.size - n + 1
    if windows <= 0:
        return np.empty(0, dtype=np.uint64), np.zeros(len(texts) + 1, dtype=np.int64)
    values = points.astype(np.uint64)
    values += np.uint64(1)
    hashes = values[:windows].copy()
    for j in range(1, n):
        hashes *= _P
        hashes += values[j : j + windows]
    text_of = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    within = text_of[:windows] == text_of[n - 1 :]  # windows that don't cross into the next
    return splitmix64(hashes[within]), _bounds(text_of[:windows][within], len(texts))


def _bounds(text_of: I64, texts: int) -> I64:
    return np.searchsorted(text_of, np.arange(texts + 1), side="left").astype(np.int64)


class Permutations:
    """``count`` random hash permutations (drawn from ``seed``) and the band key mixers."""

    def __init__(self, count: int, rows: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.a = rng.integers(0, 2**64, size=count, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**64, size=count, dtype=np.uint64)
        self.mix = rng.integers(0, 2**64, size=rows, dtype=np.uint64) | np.uint64(1)
        self.rows = rows

    def signatures(self, hashes: U64, bounds: I64) -> U64:
        """One row of ``count`` minima per text; a text without tokens gets all-max values."""
        texts = bounds.size - 1
        out = np.full((texts, self.a.size), _EMPTY_SIGNATURE, dtype=np.uint64)
        # Permutations along rows, tokens along columns: each row's multiply-add and its
        # per-text minima (reduceat) run over contiguous memory, ~3x faster than the transpose.
        work = np.empty((self.a.size, _CHUNK_TOKENS), dtype=np.uint64)
        start = 0
        while start < texts:
            # Texts [start, stop) whose tokens fit one pass (at least one text per pass).
            stop = int(np.searchsorted(bounds, bounds[start] + _CHUNK_TOKENS, side="right")) - 1
            stop = min(max(stop, start + 1), texts)
            lo, hi = int(bounds[start]), int(bounds[stop])
            if hi > lo:
                if hi - lo > work.shape[1]:
                    work = np.empty((self.a.size, hi - lo), dtype=np.uint64)
                values = work[:, : hi - lo]
                np.multiply(self.a[:, None], hashes[None, lo:hi], out=values)
                values += self.b[:, None]
                has_tokens = bounds[start + 1 : stop + 1] > bounds[start:stop]
                firsts = bounds[start:stop][has_tokens] - lo  # increasing: empty texts left out
                out[start:stop][has_tokens] = np.minimum.reduceat(values, firsts, axis=1).T
            start = stop
        return out

    def band_keys(self, signatures: U64, bands: int) -> U64:
        """One 64-bit key per band of ``rows`` signature values: (texts, bands)."""
        used = signatures[:, : bands * self.rows].reshape(len(signatures), bands, self.rows)
        keys = (used * self.mix).sum(axis=2, dtype=np.uint64)
        return splitmix64(keys)


@functools.lru_cache(maxsize=64)
def lsh_parameters(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm that minimise the false positive area
    below ``threshold`` plus the false negative area above it, weighted equally."""
    below = np.linspace(0.0, threshold, 201)
    above = np.linspace(threshold, 1.0, 201)
    best: tuple[float, int, int] | None = None
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            false_positive = _area(1 - (1 - below**rows) ** bands, below)
            false_negative = _area((1 - above**rows) ** bands, above)
            error = false_positive + false_negative
            if best is None or error < best[0]:
                best = (error, bands, rows)
    assert best is not None
    return best[1], best[2]


def _area(y: npt.NDArray[np.float64], x: npt.NDArray[np.float64]) -> float:
    return float(((y[1:] + y[:-1]) * np.diff(x)).sum() / 2)


class BandIndex:
    """The band keys of the kept documents: per band a sorted array, plus a small sorted
    array of recent keys merged into it when it grows past an eighth of it (so each batch
    copies the small array, not the large one)."""

    def __init__(self, bands: int) -> None:
        empty = np.empty(0, dtype=np.uint64)
        self._main: list[U64] = [empty] * bands
        self._recent: list[U64] = [empty] * bands

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (*self._main, *self._recent))

    def contains(self, keys: U64) -> npt.NDArray[np.bool_]:
        """For each row of ``keys`` (texts, bands): whether any band key is in the index."""
        found = np.zeros(len(keys), dtype=np.bool_)
        for band, (main, recent) in enumerate(zip(self._main, self._recent, strict=True)):
            found |= _in_sorted(main, keys[:, band]) | _in_sorted(recent, keys[:, band])
        return found

    def add(self, keys: U64) -> None:
        for band in range(len(self._main)):
            recent = _merge(self._recent[band], np.sort(keys[:, band]))
            if recent.size > max(1 << 16, self._main[band].size >> 3):
                self._main[band] = _merge(self._main[band], recent)
                recent = np.empty(0, dtype=np.uint64)
            self._recent[band] = recent


def _in_sorted(sorted_keys: U64, keys: U64) -> npt.NDArray[np.bool_]:
    if sorted_keys.size == 0:
        return np.zeros(keys.size, dtype=np.bool_)
    at = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    found: npt.NDArray[np.bool_] = sorted_keys[at] == keys
    return found


def _merge(sorted_keys: U64, more: U64) -> U64:
    if sorted_keys.size == 0:
        return more
    merged: U64 = np.insert(sorted_keys, np.searchsorted(sorted_keys, more), more)
    return merged


def first_of_each_group(keys: U64, candidates: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Which texts a greedy pass in order keeps, among ``candidates`` (texts no earlier batch
    matched): a text is dropped when one of its band keys equals a key of an earlier *kept*
    text of this batch. Only texts that share a key with another one are looked at one by one.
    """
    kept = candidates.copy()
    shared = np.zeros(len(keys), dtype=np.bool_)
    rows = np.flatnonzero(candidates)
    for band in range(keys.shape[1]):
        column = keys[rows, band]
        values, counts = np.unique(column, return_counts=True)
        shared[rows[np.isin(column, values[counts > 1])]] = True
    seen: set[tuple[int, int]] = set()
    for text in np.flatnonzero(shared):
        own = {(band, int(key)) for band, key in enumerate(keys[text])}
        if own & seen:
            kept[text] = False
        else:
            seen |= own
    return kept
