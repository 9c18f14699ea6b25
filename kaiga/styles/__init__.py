"""Styles: the library of prompt templates (library.py) and how a request mixes them (mix.py)."""
