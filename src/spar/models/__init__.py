"""Embeddings, transformer blocks, SPAR, baselines and task heads."""
