"""Property tests: whatever the input, the loader answers with diagnostics placed in the file, never a traceback.

Also keeps the schema's fast path honest: its yes/no must equal jsonschema's on mutated pathways.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.language.loader import LoadResult, load_pathway_text
from engine.language.schema import _fast_valid, _validator

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = (ROOT / "tests" / "data" / "valid" / "minimal.yaml").read_text(encoding="utf-8")
BASE = yaml.safe_load(MINIMAL)
FUZZ = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

YAMLISH = st.text(alphabet=st.sampled_from(list(" \n\t:-[]{},\"'#&*!|>?%@abcdxyz019._~<=\\\x00é")), max_size=300)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**20),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["3d", "P", "-3d", "PT", "ten days", "detox", "Bad Id", "a.b", "on", "2026-01-01", ""]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["id", "fact", "not", "all", "in", "from", "to", "x"]), inner, max_size=3),
    ),
    max_leaves=6,
)


def assert_clean(result: LoadResult, source: str | bytes) -> None:
    """The loader's contract: positions inside the file, one line each, sorted, and ``ok`` means no error."""
    assert isinstance(result, LoadResult)
    text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
    last_line = len(re.split("\r\n|[\r\n\x85\u2028\u2029]", text))  # line breaks as YAML counts them
    for diagnostic in result.diagnostics:
        assert 1 <= diagnostic.line <= last_line, diagnostic
        assert diagnostic.col >= 1, diagnostic
        assert "\n" not in diagnostic.message and diagnostic.message, diagnostic
        assert "internal error" not in diagnostic.message, diagnostic
    assert result.diagnostics == sorted(result.diagnostics)
    errors = [d for d in result.diagnostics if d.severity == "error"]
    assert result.ok == (not errors)
    assert (result.spec is not None) == result.ok


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += paths_of(item, (*prefix, i))
    return out


def mutate(document: Any, path: tuple[Any, ...], action: str, new: Any) -> Any:
    if not path:
        return new
    document = copy.deepcopy(document)
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return document


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    assert_clean(load_pathway_text(data, "fuzz.yaml"), data)


@FUZZ
@given(YAMLISH)
def test_random_yaml_like_text(text: str) -> None:
    assert_clean(load_pathway_text(text, "fuzz.yaml"), text)


@FUZZ
@given(st.data())
def test_mutated_documents(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(paths_of(BASE)))
    action = data.draw(st.sampled_from(["delete", "replace"]) if path else st.just("replace"))
    document = mutate(BASE, path, action, data.draw(VALUES))
    assert _fast_valid(document) == _validator().is_valid(document)
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    assert_clean(load_pathway_text(text, "fuzz.yaml"), text)


@FUZZ
@given(st.data())
def test_mutated_text(data: st.DataObject) -> None:
    lines = MINIMAL.split("\n")
    i = data.draw(st.integers(min_value=0, max_value=len(lines) - 1))
    action = data.draw(st.sampled_from(["duplicate", "delete", "indent", "dedent", "tab", "insert", "swap"]))
    if action == "duplicate":
        lines.insert(i, lines[i])
    elif action == "delete":
        del lines[i]
    elif action == "indent":
        lines[i] = " " * data.draw(st.integers(1, 5)) + lines[i]
    elif action == "dedent":
        lines[i] = lines[i][data.draw(st.integers(1, 4)) :]
    elif action == "tab":
        lines[i] = "\t" + lines[i].lstrip(" ")
    elif action == "insert":
        at = data.draw(st.integers(0, len(lines[i])))
        lines[i] = lines[i][:at] + data.draw(YAMLISH) + lines[i][at:]
    else:
        j = data.draw(st.integers(min_value=0, max_value=len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    text = "\n".join(lines)
    assert_clean(load_pathway_text(text, "fuzz.yaml"), text)


@settings(deadline=None, max_examples=60)
@given(st.data())
def test_mutations_that_keep_a_pathway_valid_load_with_a_spec(data: st.DataObject) -> None:
    """Renaming a stage's display name or a description never breaks a valid pathway."""
    document = copy.deepcopy(BASE)
    i = data.draw(st.integers(0, len(document["stages"]) - 1))
    document["stages"][i]["name"] = data.draw(st.text(min_size=1, max_size=30))
    document["description"] = data.draw(st.text(max_size=60))
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    result = load_pathway_text(text, "fuzz.yaml")
    assert result.ok, [str(d) for d in result.diagnostics]
