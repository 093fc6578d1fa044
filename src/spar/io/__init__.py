"""Readers for raw sensor files and coordinate conversion."""
