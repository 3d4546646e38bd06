"""The JSON results that the documents quote are in the repository."""

import glob
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CITED = re.compile(r"benchmarks/results/[\w{},.*\-]+\.json")


def _expand_braces(pattern):
    """``a{1,2}b`` -> ``["a1b", "a2b"]``, as the shell expands the commands shown."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if match is None:
        return [pattern]
    return [path for choice in match.group(1).split(",")
            for path in _expand_braces(pattern[:match.start()] + choice + pattern[match.end():])]


def test_brace_expansion():
    assert _expand_braces("r_{a,b}_x{1,2}.json") == ["r_a_x1.json", "r_a_x2.json",
                                                     "r_b_x1.json", "r_b_x2.json"]


@pytest.mark.parametrize("document", ["README.md", "benchmarks/RESULTS.md", "CHANGELOG.md"])
def test_every_cited_results_file_exists(document):
    text = (ROOT / document).read_text()
    cited = sorted(set(CITED.findall(text)))
    missing = [path for reference in cited for path in _expand_braces(reference)
               if not glob.glob(str(ROOT / path))]
    assert cited or document != "benchmarks/RESULTS.md"
    assert missing == []
