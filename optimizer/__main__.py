"""``python -m optimizer`` runs the onnx-opt command line."""

from optimizer.cli import main

main()
