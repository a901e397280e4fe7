"""Drivers of the Ascend toolchain (ATC, AOE, auto_tune, msprof, ais_bench / benchmark).

One module per responsibility: ``environment`` finds the toolkit, ``process`` runs a tool,
``atc`` / ``aoe`` / ``msprof`` / ``inference`` know one tool's contract each, and
``npu_profile`` joins msprof with the inference tool.
"""
