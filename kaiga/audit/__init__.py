"""Audits of a model: skews in what it makes (bias) and near-copies of its training images (memorisation)."""
