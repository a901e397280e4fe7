"""ATC's console output, as recorded in real logs, parsed into codes, messages, solutions, tracebacks."""

from __future__ import annotations

import pytest

from optimizer.toolchain.atc import AtcMessage, error_codes, parse_output

INSTALL = (
    "Check the version of the installation package and reinstall the package. "
    "For details, see the operator specifications."
)
PARSER = "No parser is registered for Op [Conv_{}, optype [ai.onnx::11::Convx]]."
NO_KERNEL = "No supported Ops kernel and engine are found for [Conv_{}], optype [Conv]."
PARSE_FAILED = "ATC model parse ret fail.[FUNC:ParseGraph][FILE:omg.cc][LINE:788]"
FRAMEWORK = "[--framework] is required. The value must be [0(Caffe) or 1(MindSpore) or 3(TensorFlow) or 5(Onnx)]."


def parse(data, name: str) -> list[AtcMessage]:
    return parse_output((data / name).read_text())


@pytest.mark.parametrize(
    "name, code, message, tb_first, tb_last, tb_count",
    [
        ("msit_ut_atc_err_e19010.log", "E19010", PARSER.format(52), PARSER.format(112), PARSE_FAILED, 6),
        ("msit_ut_atc_err_ez9010.log", "EZ9010", PARSER.format(52), PARSER.format(112), PARSE_FAILED, 6),
        ("msit_ut_atc_err_ez0501.log", "EZ0501", "IR for Op [Conv_52, optype [Conv]], is not registered.",
         "IR for Op [Conv_112, optype [Conv]], is not registered.",
         "IR for Op [Conv_292, optype [Conv]], is not registered.", 4),
        ("msit_ut_atc_err_ez3003.log", "EZ3003", NO_KERNEL.format(52), NO_KERNEL.format(112), NO_KERNEL.format(292), 4),
        ("msit_ut_atc_err_ez3002.log", "EZ3002", "Optype [Convx] of Ops kernel [AICORE] is unsupported.", None, None,
         0),
    ],
)
def test_msit_failures(data, name, code, message, tb_first, tb_last, tb_count):
    [error] = parse(data, name)
    assert (error.code, error.message, error.solution, error.cause) == (code, message, INSTALL, None)
    assert len(error.traceback) == tb_count
    if tb_count:
        assert (error.traceback[0], error.traceback[-1]) == (tb_first, tb_last)


def test_unknown_code_keeps_the_console_text(data):
    [error] = parse(data, "msit_ut_atc_err_unknown.log")
    assert "E19025" not in error_codes()
    assert error == AtcMessage("E19025", "Input tensor is invalid. Reason:")


def test_older_failures_solutions_come_from_the_registry(data):
    e10007, e10054, e10001, e40000, ez3003 = parse(data, "atc_fail_E10007_E10054_E10001_misc_third_party.log")
    assert e10007 == AtcMessage("E10007", FRAMEWORK, solution="Set a valid parameter value.", title="Invalid_Argument")
    assert e10054 == AtcMessage(
        "E10054",
        "The requied parameter [--model] for ATC is empty. Another possible reason is that the value of some "
        'parameter is not enclosed by quotation marks ("").',
        solution="Check whether the command line parameter format is correct.",
        title="Invalid_Argument",
    )
    assert e10001 == AtcMessage(
        "E10001",
        "Value [-1] for parameter [input_2] is invalid. Reason: maybe you should set input_shape to specify its shape.",
        title="Invalid_Argument",
    )
    assert not e10001.is_auto_tune_deprecated
    assert e40000 == AtcMessage("E40000", "Failed to import te.platform.log_util.")
    assert ez3003.cause == (
        "The operator is not supported by the system. Therefore, no hit is found in any operator information library."
    )
    assert ez3003.solution == (
        "1. Check that the OPP component is installed properly. "
        "2. Submit an issue to request for the support of this operator type."
    )
    assert ez3003.traceback == [
        "build graph failed, graph id:0, ret:-1[FUNC:BuildModel][FILE:ge_generator.cc][LINE:148"
    ]


def test_cann8_pid_prefix_is_dropped(data):
    e10007, ec0010, tbe, numpy = parse(data, "atc_fail_cann800_E10007_EC0010_channyHuang_blog.log")
    assert e10007.message == FRAMEWORK
    assert ec0010.code == "EC0010"
    assert ec0010.message == "Failed to import Python module [ModuleNotFoundError: No module named 'decorator'.]."
    assert ec0010.solution.startswith("Check that all required components are properly installed")
    assert len(ec0010.traceback) == 10
    assert ec0010.traceback[0] == (
        "AOE Failed to call InitCannKB[FUNC:Initialize][FILE:python_adapter_manager.cc][LINE:47]"
    )
    assert ec0010.traceback[-1] == "GELib::InnerInitialize failed.[FUNC:Initialize][FILE:gelib.cc][LINE:177]"
    assert tbe.message == "Failed to import Python module [ModuleNotFoundError: No module named 'tbe'.]."
    assert (tbe.solution, tbe.traceback) == (None, [])
    assert numpy.message.startswith("Failed to import Python module [AttributeError: `np.float_` was removed")


def test_the_same_error_with_and_without_the_pid_prefix(data):
    old = parse(data, "atc_fail_E10007_E10054_E10001_misc_third_party.log")[0]
    new = parse(data, "atc_fail_cann800_E10007_EC0010_channyHuang_blog.log")[0]
    assert old == new


def test_success_warnings(data):
    warnings = parse(data, "atc_success_ICNet_readme_excerpt.log")
    assert [(w.code, w.is_warning) for w in warnings] == [("W11001", True), ("W11001", True)]
    assert warnings[1].message == (
        "High-priority service of op[PartitionedCall_AvgPool_52_6] is invalid, low-priority service is used. "
        "It can work normally but may affect performance."
    )


def test_auto_tune_deprecation_is_recognised():
    text = (
        "ATC run failed, Please check the detail log, Try 'atc --help' for more information\n"
        "E10001: [PID: 7] 2025-03-18-09:02:18.501.341 Value [RL,GA] for parameter [--auto_tune_mode] is invalid. "
        "Reason: The Auto Tune function has been deprecated. Please use the AOE tool for tuning.\n"
    )
    [error] = parse_output(text)
    assert error.message.startswith("Value [RL,GA] for parameter [--auto_tune_mode]")
    assert error.is_auto_tune_deprecated
