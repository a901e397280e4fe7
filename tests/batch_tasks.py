"""A batch task for the pool tests, importable by the spawned workers: it kills its worker on one
model (as a crash in a native library would) and does the others for real."""

import os

from optimizer.loop.batch import run_item


def die_on_crash_model(item):
    if item.key.startswith("crash"):
        os._exit(3)
    return run_item(item)
