"""Profiling data: readers, one Profile model, comparison, hotspots and reports."""
