"""Metrics, tables, figures and reports."""
