"""Merge the card of one config into a repo card that may hold other configs (`builder push --config`).

The repo card is a Hub dataset card: a YAML header and a Markdown body. Other configs' entries
(in `configs` and `dataset_info`) keep their exact text, so that a push of one config never
rewrites what another push (ours or `Dataset.push_to_hub`'s) wrote; the body keeps everything but
this config's section, which sits between `<!-- occluded-ccreid:config NAME -->` markers.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from occluded_ccreid.layout import CardHeaderError, split_card

CONFIGS_END = "<!-- occluded-ccreid:configs-end -->"
_SECTION = "<!-- occluded-ccreid:config {name} -->"
_SECTION_END = "<!-- occluded-ccreid:config-end {name} -->"
_MERGED_LISTS = ("configs", "dataset_info")  # one entry per config: merged by config name
_TOP_KEY = re.compile(r"^[^\s#-][^:]*:")
_DEFAULT_LINE = re.compile(r"(?m)^  default: true\n")


class CardMergeError(ValueError):
    """The repo's card cannot be merged (its YAML header does not parse as the Hub writes it)."""


def blocks(header: str) -> dict[str, str]:
    """Top-level YAML blocks, in order: key -> its text (the key's line and its indented lines)."""
    found: dict[str, str] = {}
    key = None
    for line in header.splitlines(keepends=True):
        if _TOP_KEY.match(line):
            key = line.split(":", 1)[0].strip()
            found[key] = line
        elif key is not None:
            found[key] += line
        elif line.strip():
            raise CardMergeError(f"unexpected line {line.strip()!r} before the first key of the YAML header")
    return found


def _entries(block: str) -> list[tuple[str, str]]:
    """(config_name, text) of each entry of a `configs:` / `dataset_info:` block, text as written.

    A single entry written as a mapping (datasets does so for one config) becomes a list entry by
    turning its first line's indent into '- ': the other lines keep their bytes.
    """
    lines = block.splitlines(keepends=True)[1:]
    if lines and lines[0].startswith("  ") and not lines[0].startswith("  -"):
        lines[0] = "- " + lines[0][2:]
    entries: list[str] = []
    for line in lines:
        if line.startswith("- ") or not entries:
            entries.append(line)
        else:
            entries[-1] += line
    named = []
    for text in entries:
        parsed = yaml.safe_load(text)
        item = parsed[0] if isinstance(parsed, list) and parsed else {}
        named.append((str(item.get("config_name", "default")) if isinstance(item, dict) else "default", text))
    return named


def _lines(texts: list[str]) -> str:
    return "".join(t if t.endswith("\n") else t + "\n" for t in texts)


def _merge_entries(key: str, old: str | None, new: str | None, config_name: str, default: bool) -> str:
    """The `configs` / `dataset_info` block: other configs' entries as written, this config's replaced
    in place (it stays the default if it was) or appended; `default` moves the default here."""
    mine = _entries(new)[0][1] if new is not None else None
    texts, placed = [], False
    for name, text in _entries(old) if old is not None else []:
        if name == config_name:
            if mine is not None and not placed:
                if key == "configs" and _DEFAULT_LINE.search(text) and not _DEFAULT_LINE.search(mine):
                    mine = mine.rstrip("\n") + "\n  default: true\n"  # stays the default until moved
                texts.append(mine)
                placed = True
            continue
        texts.append(_DEFAULT_LINE.sub("", text) if default and key == "configs" else text)
    if mine is not None and not placed:
        texts.append(mine)
    return f"{key}:\n" + _lines(texts)


def _merge_value(key: str, old_block: str, new_block: str, old: Any, new: Any) -> str:
    """A key other than the per-config lists: lists become the union, anything else the new value."""
    if isinstance(new, list) and isinstance(old, list):
        union = list(old) + [v for v in new if v not in old]
        return old_block if union == old else yaml.safe_dump({key: union}, sort_keys=False, allow_unicode=True)
    return new_block


def merge_header(old_header: str, new_header: str, config_name: str, default: bool) -> str:
    """The merged YAML header (without '---' lines). Keys only the old card has are kept (the
    gated-access fields an earlier `--gated` push wrote among them); see `merge_card`."""
    old_blocks, new_blocks = blocks(old_header), blocks(new_header)
    try:
        old_values = (yaml.safe_load(old_header) or {}) if old_header else {}
    except yaml.YAMLError as exc:
        raise CardMergeError(f"the repo card's YAML header does not parse ({' '.join(str(exc).split())})") from exc
    new_values = yaml.safe_load(new_header) or {}
    merged: dict[str, str] = {}
    for key in [*old_blocks, *(k for k in new_blocks if k not in old_blocks)]:
        if key in _MERGED_LISTS:
            merged[key] = _merge_entries(key, old_blocks.get(key), new_blocks.get(key), config_name, default)
        elif key not in new_blocks:
            merged[key] = old_blocks[key]
        else:
            merged[key] = _merge_value(
                key, old_blocks.get(key, ""), new_blocks[key], old_values.get(key), new_values[key]
            )
    header = _lines(list(merged.values()))
    yaml.safe_load(header)  # a merge that does not parse is a bug: fail here, never on the Hub
    return header


def merge_card(existing: str | None, new: str, config_name: str, default: bool = False) -> str:
    """The repo card with `new` (a card rendered for `config_name` alone) merged into `existing`.

    YAML header: the `configs` and `dataset_info` entries of other configs keep their exact text
    (only a `default: true` line is dropped from another config's entry when `default` moves the
    default here); this config's entries are replaced or appended, and a config that was the
    default stays the default. List-valued keys (tags, source datasets, ...) become the union;
    other keys take the new card's value; keys only the existing card has are kept.
    Body: this config's marked section replaces its old one, or is inserted before the end
    marker; everything else of the existing body is kept. An existing card without the markers
    (e.g. of a single-config push), or none, gets the new card's body. The result merged again with
    the same card is the same text.
    """
    existing = existing or ""  # no card yet: merged with an empty one, so the entries get their list form at once
    try:
        new_header, new_body = split_card(new)
        old_header, old_body = split_card(existing)
    except CardHeaderError as exc:
        raise CardMergeError(str(exc)) from exc
    header = merge_header(old_header, new_header, config_name, default)
    return f"---\n{header}---\n{_merge_body(old_body, new_body, config_name)}"


def replace_keys(card: str, values: dict[str, Any]) -> str:
    """`card` with the top-level YAML keys of `values` set (replaced in place, or appended)."""
    header, body = split_card(card)
    found = blocks(header)
    for key, value in values.items():
        found[key] = yaml.safe_dump({key: value}, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{_lines(list(found.values()))}---\n{body}"


def _section(body: str, name: str) -> tuple[int, int] | None:
    start, end = body.find(_SECTION.format(name=name)), body.find(_SECTION_END.format(name=name))
    if start < 0 or end < start:
        return None
    return start, end + len(_SECTION_END.format(name=name))


def _merge_body(old: str, new: str, name: str) -> str:
    span = _section(new, name)
    if span is None or CONFIGS_END not in old:
        return new
    section = new[span[0] : span[1]]
    old_span = _section(old, name)
    if old_span is not None:
        return old[: old_span[0]] + section + old[old_span[1] :]
    at = old.index(CONFIGS_END)
    return old[:at] + section + "\n\n" + old[at:]
