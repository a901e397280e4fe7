"""Fake `ais_bench` package (tests only): put tests/fakes on PYTHONPATH and run `python3 -m ais_bench`."""
