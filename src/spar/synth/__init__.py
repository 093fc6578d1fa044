"""Simulators that write demo raw data in the real datasets' release formats."""
