# Test fixture written for onnx-opt: it reproduces the LAYOUT of the later CANN OPP file
# op_impl/built-in/ai_core/tbe/impl/dynamic/transpose.py (2022 era, with the lhisi, fuzzy and
# black lists) as described in ASCEND_FACTS.md section 2. Not Huawei's code; shapes made up.
"""
dynamic transpose (layout fixture)
"""


def _fuzzy_match(shape_t):
    """
    -1 matches any dim
    """
    white_list_shape_fuzzy =  [
                               [-1, 8, 64, -1], [1, -1, 3]
                              ]
    for item in white_list_shape_fuzzy:
        if len(item) == len(shape_t) and all(a in (-1, b) for a, b in zip(item, shape_t)):
            return True
    return False


def _by_dynamic_static_union_version(shape, core_num):
    """
    decide whether a static shape goes to the dynamic kernel
    """
    if core_num == 1:
        white_list_shape_lhisi = [[1, 3, 224, 224], [2, 2]]
        return list(shape) in white_list_shape_lhisi

    black_list_shape = [
                         #MODELNAME_A
                         [5, 6, 7],
                         #MODELNAME_B
                         [9, 9]
                       ]
    if list(shape) in black_list_shape:
        return False

    white_list_shape = [
                         [4, 2, 4, 2, 3, 64], [1, 3, 8, 8], [2, 16, 16], [1, 3, 8, 8],
                         [1, 512, 7, 7], [8, 8],
                         [3, 5, 7]
                       ]
    shape_t = list(shape)
    if shape_t in white_list_shape:
        return True
    if _fuzzy_match(shape_t):
        return True
    return False


def check_supported(input_x, perm, output_y, kernel_name="dynamic_transpose"):
    """
    route listed static shapes to the dynamic kernel
    """
    ori_shape = input_x.get("ori_shape")
    if _by_dynamic_static_union_version(ori_shape, 2):
        return True, ""
    return False, "shape not in white list"
