"""Drivers of the Ascend toolchain (ATC, AOE, auto_tune, msprof, ais_bench / benchmark).

One module per responsibility: ``environment`` finds the toolkit (set_env.sh sourced by bash),
``process`` runs a tool in its own process group, ``signals`` turns SIGTERM / SIGHUP into an
exception like Ctrl-C, ``atc`` / ``aoe`` / ``msprof`` / ``inference`` know one tool's contract
each, ``npu_profile`` joins msprof with the inference tool, ``jobs`` is what the convert and tune
verbs (and ``auto``) orchestrate, and ``doctor`` what ``onnx-opt doctor`` reports.
"""
