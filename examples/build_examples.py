"""Build the bundled example models (run from anywhere; needs torch==2.13.0 from constraints.txt).

python examples/build_examples.py
"""

from __future__ import annotations

from pathlib import Path

from torch_models import build

HERE = Path(__file__).resolve().parent
EXAMPLES = [
    ("skunit_opset11.onnx", "skunit", 11),  # Transpose -> Softmax -> Transpose (SK-ResNet50 guide)
    ("srnet_opset9.onnx", "srnet", 9),  # Reshape -> 6-D Transpose -> Reshape (RDN guide)
    ("srnet_opset11.onnx", "srnet", 11),  # DepthToSpace(CRD), which CANN 5.0.x lacks
    ("ghost_opset11.onnx", "ghost", 11),  # a clean GhostNet block (GhostNet guide)
]


def main() -> None:
    for filename, name, opset in EXAMPLES:
        path = build(name, opset, HERE / filename)
        print(f"{path.relative_to(HERE.parent)}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
