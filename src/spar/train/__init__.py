"""Pretraining and fine-tuning loops, checkpoints and device choice."""
