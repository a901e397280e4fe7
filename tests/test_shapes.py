import pytest
from hypothesis import given
from hypothesis import strategies as st

from optimizer.errors import UserError
from optimizer.shapes import format_input_shapes, parse_input_shapes


def test_parses_atc_syntax_with_spaces_and_colons_in_names():
    shapes = parse_input_shapes("image:1,3,224,224; mask:1, 1,224,224;input:0:2,5")
    assert shapes == {"image": [1, 3, 224, 224], "mask": [1, 1, 224, 224], "input:0": [2, 5]}


def test_scalar_input_and_empty_text():
    assert parse_input_shapes("scale:") == {"scale": []}
    assert parse_input_shapes(None) == {}
    assert parse_input_shapes("  ") == {}


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("image", "not 'name:d0,d1,...'"),
        (":1,2", "not 'name:d0,d1,...'"),
        ("image:1,-1,3", "'-1'"),
        ("image:1~8,3", "'1~8'"),
        ("image:1,x", "'x'"),
        ("a:1;a:2", "given twice"),
    ],
)
def test_bad_shapes_are_user_errors(text, fragment):
    with pytest.raises(UserError, match=fragment.replace("~", r"\~").replace("(", r"\(")):
        parse_input_shapes(text)


names = st.text(alphabet=st.characters(whitelist_categories=("L", "N"), whitelist_characters="_.:/"), min_size=1)


@given(
    st.dictionaries(
        names.filter(lambda n: n.strip() == n and not n.endswith(":")),
        st.lists(st.integers(0, 4096), max_size=6),
        max_size=4,
    )
)
def test_format_and_parse_round_trip(shapes):
    assert parse_input_shapes(format_input_shapes(shapes)) == shapes
