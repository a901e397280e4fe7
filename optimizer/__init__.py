"""onnx-opt: ONNX graph optimisation front-end for Huawei Ascend model conversion."""

__version__ = "0.1.0"
