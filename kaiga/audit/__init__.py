"""Audits of a model: near-copies of its training images (memorisation) and skews in what it makes (bias)."""
