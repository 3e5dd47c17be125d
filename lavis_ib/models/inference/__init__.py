"""Inference helpers: scoring answer candidates by log-likelihood, the prompt-prefill generation cache, the image
feature cache, and LAVIS's `predict_answers` / `predict_class` API."""
