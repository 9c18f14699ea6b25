"""Inference pipelines: each turns a validated request and a loaded model into images."""
