"""Windowing, spectrograms and the Zarr tensor store."""
