"""The HTML report: table, embedded chart, and the fallback without matplotlib."""

from __future__ import annotations

import base64
import re
import sys

import pytest

from profiles import OpRecord, Profile, compare_profiles, read_profile
from profiles.html_report import NO_CHART, write_html


def rdn_comparison(data):
    return compare_profiles(read_profile(data / "rdn_before_op_statistic_0_1.csv"),
                            read_profile(data / "rdn_after_op_statistic_0_1.csv"))


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Make every `import matplotlib...` fail, as without the `reports` extra."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)


def test_html_with_chart(data, tmp_path):
    html = write_html(rdn_comparison(data), tmp_path / "report.html").read_text()
    assert "<td>TransposeD</td><td>934287.800</td><td>10141.094</td><td>-924146.706</td>" in html
    png = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert png and base64.b64decode(png.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
    assert NO_CHART not in html


def test_html_without_matplotlib(data, tmp_path, no_matplotlib):
    html = write_html(rdn_comparison(data), tmp_path / "report.html").read_text()
    assert "the charts need the `reports` extra: pip install &#x27;onnx-opt[reports]&#x27;" in html
    assert "<img" not in html and "<td>TransposeD</td>" in html


def test_html_escapes_everything(tmp_path, no_matplotlib):
    evil = "<script>alert(1)</script>"
    before = Profile(f"{evil}.csv", "op_summary", [OpRecord(evil, evil, 1.0)], model_name=evil)
    after = Profile("a&b.csv", "op_summary", [OpRecord(evil, evil, 2.0)], model_name="other")
    html = write_html(compare_profiles(before, after), tmp_path / "r.html").read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "a&amp;b.csv" in html


def test_html_with_latency_samples_shows_both_distributions_and_the_verdict(tmp_path):
    from profiles import Latency

    def profile(name, samples):
        return Profile(name, "onnxruntime", [OpRecord("Conv_0", "Conv", 5.0)], latency=Latency.from_samples(samples))

    c = compare_profiles(profile("b", [9, 10, 11, 10, 12]), profile("a", [6, 7, 8, 7, 9]))
    html = write_html(c, tmp_path / "r.html").read_text()
    assert "<p class='faster'><b>after is faster than before: ratio 0.700 (95% CI " in html
    assert "alt='latency distributions'" in html and "alt='before vs after'" in html
    pngs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(pngs) == 2 and all(base64.b64decode(p).startswith(b"\x89PNG") for p in pngs)


def test_html_without_samples_says_no_verdict(data, tmp_path, no_matplotlib):
    before = read_profile(data / "benchmark_pureinfer_console_DPN131_bs4.log")
    after = read_profile(data / "benchmark_pureinfer_txt_Jasper_bs1_PureInfer_perf_of_jasper_1batch_in_device_0.txt")
    html = write_html(compare_profiles(before, after), tmp_path / "r.html").read_text()
    assert "<p class='none'><b>no samples: no verdict (before and after have only summaries)</b></p>" in html
