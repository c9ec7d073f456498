"""FewRel's entity markers: marking the head and the tail in a sentence, finding the opening
markers' token positions in the encoded ids, and checking them.

A FewRel input is its sentence with plain-text markers around the head and the tail entity
(`entity_markers`: punct `@ head @`, `# tail #`, or brackets `[E1] head [/E1]`, `[E2] tail [/E2]`).
The opening markers' positions are found from the tokenizer's character offsets at encoding, so
a marker symbol elsewhere in the sentence is never taken for one; they are the read-out of the
`entity` pooling (chapters 5 and 6). Used by `data.tasks`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core.errors import DataError

# (head open, head close), (tail open, tail close): plain text the tokenizer splits into pieces.
MARKERS = {"punct": (("@", "@"), ("#", "#")),
           "brackets": (("[E1]", "[/E1]"), ("[E2]", "[/E2]"))}


def entity_span(indices: Sequence[Sequence[int]], length: int) -> tuple[int, int] | None:
    """(first, last) token position of an entity's first mention, or None when the mention is
    missing or reaches outside a sentence of `length` tokens."""
    mention = list(indices[0]) if len(indices) else []
    if not mention or min(mention) < 0 or max(mention) >= length:
        return None
    return min(mention), max(mention)


def marked_entities(tokens: Sequence[str], head: tuple[int, int], tail: tuple[int, int],
                    markers: str) -> tuple[list[str], tuple[int, int]]:
    """The tokens with markers around the head span and the tail span (inclusive positions), and
    the indices in that list of the head's and the tail's opening marker.

    Multi-token spans get one marker pair around the whole span. Where spans share a position,
    the longer span opens first and the inner one closes first (head before tail on full ties),
    so nested spans stay nested; crossing spans keep each marker at its own span's edge.
    """
    (head_open, head_close), (tail_open, tail_close) = MARKERS[markers]
    spans = [(head, head_open, head_close, 0), (tail, tail_open, tail_close, 1)]
    marked, openers = [], [0, 0]
    for position, token in enumerate(tokens):
        for span in sorted((s for s in spans if s[0][0] == position), key=lambda s: (-s[0][1], s[3])):
            openers[span[3]] = len(marked)
            marked.append(span[1])
        closing = sorted((s for s in spans if s[0][1] == position), key=lambda s: (-s[0][0], -s[3]))
        marked += [token] + [s[2] for s in closing]
    return marked, (openers[0], openers[1])


@dataclass(frozen=True)
class MarkedText:
    """A FewRel sentence as text with entity markers, and the character offsets in it of the
    head's and the tail's opening marker."""

    text: str
    openers: tuple[int, int]


def fewrel_marked(row: dict, markers: str) -> MarkedText | None:
    """A FewRel row as marked text, or None when an entity's indices fall outside the sentence."""
    tokens = row["tokens"]
    head = entity_span(row["head"]["indices"], len(tokens))
    tail = entity_span(row["tail"]["indices"], len(tokens))
    if head is None or tail is None:
        return None
    marked, openers = marked_entities(tokens, head, tail, markers)
    starts = np.cumsum([0] + [len(piece) + 1 for piece in marked[:-1]])
    return MarkedText(" ".join(marked), (int(starts[openers[0]]), int(starts[openers[1]])))



def check_markers(tokenizer, markers: str) -> None:
    """DataError when a marker would become [UNK] in this tokenizer (head and tail alike)."""
    for marker in {m for pair in MARKERS[markers] for m in pair}:
        if tokenizer.unk_token_id in tokenizer(marker, add_special_tokens=False)["input_ids"]:
            other = next(style for style in MARKERS if style != markers)
            raise DataError(f"entity_markers={markers!r}: {marker!r} is not in the tokenizer's "
                            f"vocabulary (it would read as [UNK]); choose entity_markers={other!r}")


def token_at(offsets: Sequence[tuple[int, int]], char: int) -> int | None:
    """Index of the first token whose character span [start, end) covers `char`, else None."""
    return next((i for i, (start, end) in enumerate(offsets) if start <= char < end), None)


@dataclass(frozen=True)
class MarkedRows:
    """Encoded FewRel rows: ids [M, seq_len] int32, entities [M, 2] int32 (positions of the head's
    and the tail's opening marker in ids), kept [M] (indices of the texts encoded), cut (texts
    longer than seq_len - 2 tokens, kept as a window)."""

    ids: np.ndarray
    entities: np.ndarray
    kept: np.ndarray
    cut: int


def encode_marked_rows(tokenizer, texts: list[str], openers: list[tuple[int, int]],
                       seq_len: int) -> MarkedRows:
    """[CLS] tokens [SEP] padded to seq_len, with the token positions of the opening markers at
    character offsets `openers`. A text longer than seq_len - 2 tokens keeps the seq_len - 2
    tokens centred on its two opening markers; a text whose markers lie seq_len - 2 or more tokens
    apart cannot keep both and is dropped (left out of `kept`). DataError when no token covers a
    marker (the tokenizer dropped it)."""
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    body = seq_len - 2
    rows, entities, kept, cut = [], [], [], 0
    for index, (ids, offsets, chars) in enumerate(zip(encoded["input_ids"], encoded["offset_mapping"],
                                                      openers)):
        positions = [token_at(offsets, char) for char in chars]
        for role, char, position in zip(("head", "tail"), chars, positions):
            if position is None:
                raise DataError(f"FewRel text {index}: no token covers the {role} marker at "
                                f"character {char} of {texts[index]!r}")
        low, high = min(positions), max(positions)
        if high - low >= body:
            continue
        start = 0
        if len(ids) > body:
            cut += 1
            start = min(max(0, low - (body - (high - low + 1)) // 2), len(ids) - body)
        piece = ids[start:start + body]
        row = np.full(seq_len, tokenizer.pad_token_id, dtype=np.int32)
        row[: len(piece) + 2] = [tokenizer.cls_token_id, *piece, tokenizer.sep_token_id]
        rows.append(row)
        entities.append([position - start + 1 for position in positions])
        kept.append(index)
    return MarkedRows(np.stack(rows).astype(np.int32), np.array(entities, dtype=np.int32).reshape(-1, 2),
                      np.array(kept, dtype=np.int64), cut)


def marker_ids(tokenizer, markers: str) -> list[int]:
    """The first token id of the head's and of the tail's opening marker."""
    return [tokenizer(pair[0], add_special_tokens=False)["input_ids"][0] for pair in MARKERS[markers]]


def check_entity_positions(ids: np.ndarray, positions: np.ndarray, opener_ids: Sequence[int],
                           where: str) -> np.ndarray:
    """positions [N, 2] if every row of ids [N, L] holds the head's and the tail's opening marker
    (first ids `opener_ids`) there, else a DataError naming the first row where one is missing."""
    for column, role in enumerate(("head", "tail")):
        position = positions[:, column]
        inside = (position > 0) & (position < ids.shape[1])
        found = np.where(inside, ids[np.arange(len(ids)), np.clip(position, 0, ids.shape[1] - 1)], -1)
        missing = np.flatnonzero(found != opener_ids[column])
        if len(missing):
            row = int(missing[0])
            raise DataError(f"{where} row {row}: the {role} marker (token id {opener_ids[column]}) "
                            f"is not at position {int(position[row])} of its ids; {len(missing)} "
                            f"row(s) like it. Rebuild the task (delete its store folder)")
    return positions
