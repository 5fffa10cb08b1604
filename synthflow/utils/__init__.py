"""Helpers distilabel users import from ``distilabel.utils``: ``requirements``."""
