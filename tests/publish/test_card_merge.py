"""merge_card on hand-written repo cards: what is kept byte for byte, what moves, what is refused."""

from __future__ import annotations

import pytest
import yaml

from builder.card_merge import CardMergeError, merge_card

EXISTING = """---
license: other
tags:
- reid
configs:
- config_name: prcc
  data_files:
  - split: train
    path: prcc/train-*
  default: true
- config_name: ltcc
  data_files:
  - split: train
    path: ltcc/train-*
extra_gated_prompt: Accept the terms of PRCC and LTCC.
extra_gated_fields:
  I accept: checkbox
dataset_info:
- config_name: prcc
  splits:
  - name: train
    num_examples: 3
- config_name: ltcc
  splits:
  - name:   train
    num_examples: 4
---
# Repo
intro kept
<!-- occluded-ccreid:config prcc -->
prcc text
<!-- occluded-ccreid:config-end prcc -->

<!-- occluded-ccreid:config ltcc -->
ltcc text
<!-- occluded-ccreid:config-end ltcc -->

<!-- occluded-ccreid:configs-end -->
tail kept
"""


def _new(name: str, default: bool = False) -> str:
    return f"""---
license: other
tags:
- reid
- occlusion
configs:
- config_name: {name}
  data_files:
  - split: train
    path: {name}/train-*
{"  default: true" + chr(10) if default else ""}dataset_info:
  config_name: {name}
  splits:
  - name: train
    num_examples: 5
---
# Fresh head
<!-- occluded-ccreid:config {name} -->
{name} new text
<!-- occluded-ccreid:config-end {name} -->

<!-- occluded-ccreid:configs-end -->
fresh tail
"""


def _header(card: str) -> dict:
    return yaml.safe_load(card[3 : card.index("\n---", 3)])


def test_a_new_default_config_is_appended_and_only_the_old_default_line_moves():
    merged = merge_card(EXISTING, _new("rect", default=True), "rect", default=True)
    header = _header(merged)
    assert [c["config_name"] for c in header["configs"]] == ["prcc", "ltcc", "rect"]
    assert [c.get("default") for c in header["configs"]] == [None, None, True]
    # ltcc's entries keep their exact text (the odd spacing of "name:   train" too)
    assert "- config_name: ltcc\n  data_files:\n  - split: train\n    path: ltcc/train-*\n" in merged
    assert "- config_name: ltcc\n  splits:\n  - name:   train\n    num_examples: 4\n" in merged
    assert [i["config_name"] for i in header["dataset_info"]] == ["prcc", "ltcc", "rect"]
    assert header["tags"] == ["reid", "occlusion"]
    assert header["extra_gated_prompt"] == "Accept the terms of PRCC and LTCC."  # kept without --gated
    body = merged.split("\n---\n", 1)[1]
    assert body.startswith("# Repo\nintro kept\n") and body.endswith("tail kept\n")
    assert body.index("ltcc text") < body.index("rect new text") < body.index("<!-- occluded-ccreid:configs-end -->")


def test_replacing_a_config_keeps_its_place_and_its_default():
    merged = merge_card(EXISTING, _new("prcc"), "prcc")
    header = _header(merged)
    assert [(c["config_name"], c.get("default")) for c in header["configs"]] == [("prcc", True), ("ltcc", None)]
    assert {i["config_name"]: i["splits"][0]["num_examples"] for i in header["dataset_info"]} == {"prcc": 5, "ltcc": 4}
    body = merged.split("\n---\n", 1)[1]
    assert "prcc text" not in body and body.index("prcc new text") < body.index("ltcc text")


def test_no_existing_card_or_one_without_markers_takes_the_new_body():
    first = merge_card(None, _new("prcc"), "prcc")
    assert _header(first) == {**_header(_new("prcc")), "dataset_info": [_header(_new("prcc"))["dataset_info"]]}
    assert first.split("\n---\n", 1)[1] == _new("prcc").split("\n---\n", 1)[1]
    assert merge_card(first, _new("prcc"), "prcc") == first  # pushing the same card again changes nothing
    merged = merge_card("---\nlicense: mit\n---\n# someone's card\n", _new("prcc"), "prcc")
    assert merged.split("\n---\n", 1)[1] == _new("prcc").split("\n---\n", 1)[1]
    assert _header(merged)["license"] == "other"


def test_a_header_that_does_not_parse_is_refused():
    with pytest.raises(CardMergeError):
        merge_card("---\nconfigs: [unclosed\n---\nbody\n", _new("prcc"), "prcc")
