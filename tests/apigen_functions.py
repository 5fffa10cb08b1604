"""A functions file for APIGenExecutionChecker's conformance case (tests/test_conformance.py)."""


def add(a: int, b: int) -> int:
    return a + b
