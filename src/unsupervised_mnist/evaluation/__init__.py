"""Evaluation: one code path for every representation (reconstruction, clustering, sample quality)."""
