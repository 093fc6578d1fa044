"""Zarr-backed torch datasets, batching and presence masks."""
