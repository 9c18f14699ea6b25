"""Audits of what a model makes: near-copies of its training images (memorisation.py), skews (bias)."""
