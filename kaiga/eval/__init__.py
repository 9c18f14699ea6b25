"""Evaluation: read generated images out into features and score them against real ones."""
