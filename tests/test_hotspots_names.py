"""Names from an untrusted profile reach the terminal literally: no rich markup, no control sequences."""

from __future__ import annotations

import json

from optimizer.cli.console import literal


def test_hotspots_prints_hostile_names_literally(cli, tmp_path):
    profile = tmp_path / "op_summary_0_1.csv"
    profile.write_bytes(
        b"Op Name,OP Type,Task Type,Task Duration(us)\n"
        b"[/x],[/x],AI_CORE,30\n"
        b"conv\x1b[31mred,Conv2D,AI_CORE,20\n"
        b"odd\xffbyte,[bold]Relu,AI_CORE,10\n"
    )
    code, out, err = cli("hotspots", profile, "--json", tmp_path / "h.json")
    assert code == 0, err
    assert "\x1b" not in out
    rows = out.splitlines()
    assert any(row.count("[/x]") == 2 for row in rows)  # node and op type, as written
    assert any("conv\\x1b[31mred" in row for row in rows)
    assert any("[bold]Relu" in row for row in rows)
    assert any("odd\ufffdbyte" in row for row in rows)  # not UTF-8: shown, not a crash
    names = [node["name"] for node in json.loads((tmp_path / "h.json").read_text())["nodes"]]
    assert names == ["[/x]", "conv\x1b[31mred", "odd\ufffdbyte"]  # JSON keeps the names as they are


def test_literal():
    assert literal("a\x1b[2Jb\tc\nd\u202ee\x9b") == "a\\x1b[2Jb\\x09c\\x0ad\\u202ee\\x9b"
    assert literal(b"op\xff") == "op\\xff"
    assert literal("op\udcff") == "op\\xff"  # os.fsdecode's form of a byte that is not UTF-8
    assert literal("[/x] Conv_0 é") == "[/x] Conv_0 é"
