# Test fixture written for onnx-opt: it reproduces the LAYOUT of the CANN OPP file
# op_impl/built-in/ai_core/tbe/impl/dynamic/transpose.py (2021 era) as described in
# ASCEND_FACTS.md section 2. It is not Huawei's code; the shapes are made up.
"""
dynamic transpose (layout fixture)
"""


def _by_dynamic_static_union_version(shape, core_num):
    """
    decide whether a static shape goes to the dynamic kernel
    """
    if core_num == 1:
        return False

    white_list_shape = [
                         [4, 2, 4, 2, 3, 64], [1, 3, 8, 8], [2, 16, 16],
                         [1, 512, 7, 7], [8, 8], [1, 24, 2, 2, 20, 20],
                         [3, 5, 7]
                       ]
    shape_t = list(shape)
    if shape_t in white_list_shape:
        return True
    return False


def check_supported(input_x, perm, output_y, kernel_name="dynamic_transpose"):
    """
    route listed static shapes to the dynamic kernel
    """
    ori_shape = input_x.get("ori_shape")
    if _by_dynamic_static_union_version(ori_shape, 2):
        return True
    return False
