"""onnxruntime sessions as every verb makes them: CPU only, and onnxruntime's native log kept off the
terminal (its errors come back as exceptions, which onnx-opt turns into one line)."""

from __future__ import annotations

import re
from typing import Any

QUIET = 4  # onnxruntime's FATAL: nothing it logs at error level or below is printed


def onnxruntime() -> Any:
    """The onnxruntime module (imported on first use), its default logger silenced."""
    import onnxruntime as ort

    ort.set_default_logger_severity(QUIET)
    return ort


def session_options(**settings: Any) -> Any:
    """``SessionOptions`` with the log silenced and ``settings`` set as attributes."""
    options = onnxruntime().SessionOptions()
    options.log_severity_level = QUIET
    for name, value in settings.items():
        setattr(options, name, value)
    return options


def cpu_session(source: Any, options: Any) -> Any:
    """An ``InferenceSession`` on the CPU execution provider."""
    return onnxruntime().InferenceSession(source, options, providers=["CPUExecutionProvider"])


# onnxruntime's C++ checks: "/src/.../reshape_helper.h:91 onnxruntime::Fn(args) cond was false. Text"
_SOURCE = re.compile(r"^\S+\.(?:h|cc|cpp):\d+ \S+\(.*?\) ")
_CHECK = re.compile(r"^.*? was false\. ")
_NODE = re.compile(r"while running (?P<op>\w+) node\. Name:'(?P<name>[^']*)' Status Message: ")


def native_reason(exc: BaseException) -> str:
    """onnxruntime's innermost message as one line: it nests one per enclosing node, and a C++
    check starts with its source file, function and condition, which say nothing to a user."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    line = lines[0] if lines else type(exc).__name__
    nodes = list(_NODE.finditer(line))
    if not nodes:
        return _CHECK.sub("", _SOURCE.sub("", line), count=1) or line
    innermost = nodes[-1]
    text = line[innermost.end():]
    text = _CHECK.sub("", _SOURCE.sub("", text), count=1) or text
    return f"{innermost['op']} node '{innermost['name']}': {text}"
