"""Grounding: the grammar of one step, narrowed to what the process's pages actually say.

The CPU decodes one syscall under a JSON schema: the union of the syscalls the process may
call. This module builds that schema, and *grounds* it: a string field marked with
``grounded(kind)`` may only take values that occur in the resident journal, so the model
chooses what to copy but cannot invent it.

- ``numbers``: an arithmetic expression whose numbers all occur in the journal (or are small
  constants), joined by operators; at least one operator.
- ``url`` / ``path``: one of the URLs / paths written in the journal.
- ``text`` (and, with ``Params.ground_values``, every other string argument not marked
  ``free_text``): words that occur in the journal, a few separators between them. A value the
  conversation never mentions (a placeholder from a worked example) cannot be written.
- integer and number arguments (with ``Params.ground_values``): a number that occurs in the
  journal (in digits, or spelled out: "five", "twenty-one", "twice"), within the field's
  bounds. A syscall with a *required* number that nothing in the journal can fill is left out
  of the step, like one whose grounded field has nothing to draw from.
- answer text: every number of three or more digits must be a number that occurs in the
  journal, so a long result is copied, never misremembered (one- and two-digit numbers stay
  free, so the model can still answer from what it knows).

Rules that hold for any question (DESIGN §8): the kernel never picks the values, it only
narrows the form. For a *sensitive* syscall only the user's messages and the program count
(``Evidence.user_*``): injected text cannot name a target, and neither can a device that echoes
it back, whatever the trust of its result (a policy may name devices whose trusted results
count too: ``Policy.ground_sources``). For the others any resident page counts. A syscall
whose grounded field has no value to draw from is left out of this step's union (it cannot be
called meaningfully yet).

Neighbours: ``llmos.kernel.syscall`` supplies the specs; ``llmos.memory.ram`` the pages;
``llmos.cpu`` decodes under the result.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

from pydantic import BaseModel, PydanticUserError

from llmos.errors import UsageError
from llmos.memory.page import Page
from llmos.peripherals.base import GROUNDED_KEY, SyscallSpec

__all__ = ["Evidence", "arg_schema", "step_schema"]

# Small numbers are always available: "half" is / 2, "percent" is / 100.
_CONSTANTS = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "12", "60", "100", "1000")
# a number may carry a unit ("440Hz", "20ft", "5kg") but is not part of a word ("rs6034464")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\d_]|\.\d)")
_URL = re.compile(r"https?://[^\s\"'<>()\[\]{}]+[^\s\"'<>()\[\]{}.,;:!?]")
_PATH = re.compile(r"(?<![\w/:.])(?:[\w\-]+/)*[\w\-]+\.[A-Za-z0-9]{1,8}(?![\w/])")
_GROUPED = re.compile(r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w,])")
_NAME = re.compile(r"\b[A-Z][A-Za-z]*")
_WORD = re.compile(r"[^\s,;\"'()\[\]{}<>?!`]+")
_PART = re.compile(r"[-/]")
_MAX_WORDS = 400  # per journal; newest first
_MAX_VALUES = 200  # per kind; newest first, so a long journal keeps the recent ones
_LISTS = json.loads(files("llmos").joinpath("prompts/grounding.json").read_text(encoding="utf-8"))
# capitalised words an answer may always use, beside the names the conversation contains
_SENTENCE_WORDS: tuple[str, ...] = tuple(_LISTS["sentence_words"])

# How the model writes JSON: the separators of the worked examples, nothing else.
_JSON_FORM = {"whitespace_flexible": False, "key_separator": ": ", "item_separator": ", "}


@dataclass
class Evidence:
    """Values the journal offers for grounding, split by trust."""

    numbers: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    user_numbers: list[str] = field(default_factory=list)
    user_names: list[str] = field(default_factory=list)
    user_words: list[str] = field(default_factory=list)
    user_urls: list[str] = field(default_factory=list)
    user_paths: list[str] = field(default_factory=list)

    @classmethod
    def from_pages(
        cls, pages: Iterable[Page], *, program: str = "", sources: Iterable[str] = ()
    ) -> Evidence:
        """Collect numbers, URLs and paths from the pages, newest first, without repeats.

        The ``user_*`` lists hold what the user's messages and ``program`` say, and what
        trusted pages from ``sources`` say: the only values a sensitive call may target.
        """
        ev = cls()
        widened = frozenset(sources)
        for page in reversed(list(pages)):
            if page.kind == "call":  # the model's own calls are not evidence
                continue
            targets = _grounds_targets(page, widened)
            for kind, values in _values(page.text).items():
                cap = _MAX_WORDS if kind == "words" else _MAX_VALUES
                _extend(getattr(ev, kind), values, cap)
                if targets:
                    _extend(getattr(ev, f"user_{kind}"), values, cap)
        # the program is older than the journal (newest first: it comes last); it grounds
        # targets, not the values of other calls
        for kind, values in _values(program).items():
            _extend(getattr(ev, f"user_{kind}"), values,
                    _MAX_WORDS if kind == "words" else _MAX_VALUES)
        return ev


def _values(text: str) -> dict[str, list[str]]:
    """Numbers, names, words, URLs and paths written in ``text``, by kind."""
    text_wo_urls = _URL.sub(" ", text)
    return {
        # "12,000" counts as 12000, never as 12 and 000
        "numbers": _NUMBER.findall(_GROUPED.sub(lambda m: m.group().replace(",", ""), text))
        + _spelled(text_wo_urls),
        "names": _NAME.findall(text_wo_urls),
        "words": _words(text),
        "urls": _URL.findall(text),
        "paths": _PATH.findall(text_wo_urls),
    }


def _grounds_targets(page: Page, sources: frozenset[str]) -> bool:
    """The user's own words (this turn's or recalled), the program, or a trusted result of a
    device the policy names. Never the model's notes, summaries, or other device output."""
    if not page.trusted:
        return False
    if page.kind == "message" and page.role == "user":
        return True
    return page.kind == "result" and page.source in sources


_UNITS: tuple[str, ...] = tuple(_LISTS["units"])  # zero .. nineteen
_TENS: tuple[str, ...] = tuple(_LISTS["tens"])  # twenty .. ninety
_SCALES: dict[str, int] = dict(_LISTS["scales"])  # hundred, dozen, twice, ...
_SPELLED = re.compile(
    rf"\b(?:({'|'.join(_TENS)})(?:[- ]({'|'.join(_UNITS[1:10])}))?|({'|'.join(_UNITS)})"
    rf"|({'|'.join(_SCALES)}))\b",
    re.IGNORECASE,
)


def _spelled(text: str) -> list[str]:
    """Numbers written as words ("five", "twenty-one", "twice"), as digits."""
    found = []
    for tens, unit, small, scale in _SPELLED.findall(text):
        if tens:
            value = 20 + 10 * _TENS.index(tens.lower())
            value += _UNITS.index(unit.lower()) if unit else 0
        elif small:
            value = _UNITS.index(small.lower())
        else:
            value = _SCALES[scale.lower()]
        found.append(str(value))
    return found


def _words(text: str) -> list[str]:
    """The words of ``text``, and the parts of compounds ("gas-fueled": gas, fueled)."""
    found: list[str] = []
    for word in _WORD.findall(text):
        found.append(word.rstrip(".:"))
        parts = _PART.split(word)
        if len(parts) > 1:
            found.extend(p.rstrip(".:") for p in parts if p)
    return found


def _extend(target: list[str], values: Iterable[str], cap: int = _MAX_VALUES) -> None:
    for v in values:
        if v and v not in target and len(target) < cap:
            target.append(v)


def _alternation(values: Iterable[str]) -> str:
    # longest first, so the regex engine does not prefer a prefix of a longer number
    return "|".join(re.escape(v) for v in sorted(set(values), key=lambda s: (-len(s), s)))


def expression_pattern(numbers: Iterable[str]) -> str:
    """Regex of an arithmetic expression over ``numbers`` with at least one operator."""
    nums = [n.lstrip("-") for n in numbers] + list(_CONSTANTS)
    term = rf"\(?\(?(?:{_alternation(nums)})\)?\)?"
    op = r" ?(?:\+|-|\*|/|\*\*|%|//) ?"
    return rf"^-?{term}(?:{op}{term}){{1,8}}$"


def words_pattern(words: Iterable[str]) -> str:
    """Regex of a short phrase made of ``words``, joined by spaces or light punctuation."""
    word = f"(?:{_alternation(words)})"
    return rf"^{word}(?:(?:, | |-|/|\.|: ){word}){{0,15}}$"


def answer_pattern(numbers: Iterable[str], names: Iterable[str] | None = None) -> str:
    """Regex of free text whose numbers (and, if given, capitalised words) are grounded.

    Every number longer than two digits must be one of ``numbers``. With ``names``, every word
    that starts with a capital letter must be one of ``names`` or a common sentence word
    (``The``, ``It``, ...): the answer then reports what the conversation says rather than a
    name copied from a worked example.
    """
    allowed = [n.lstrip("-") for n in numbers if len(n.lstrip("-")) > 2]
    allowed += [g for g in map(_grouped, allowed) if g]  # 12000 may be written 12,000
    num = rf"(?:{_alternation(allowed)}|[0-9]{{1,2}})" if allowed else r"[0-9]{1,2}"
    if names is None:
        gap = r"[^0-9\x00-\x1f\\]"
        # digits come in whole numbers: each number is followed by a non-digit (or the end)
        return rf"^{gap}*(?:{num}(?:[.,]?{gap}+{num})*[.,]?{gap}*)?$"
    words = _alternation([*names, *_SENTENCE_WORDS])
    token = rf"(?:{num}|{words})"
    free = r"[^0-9A-Z\x00-\x1f\\]"  # lowercase words, spaces, punctuation
    sep = r"[^0-9A-Za-z\x00-\x1f\\]"  # what must follow a whole number or name
    return rf"^{free}*(?:{token}(?:{sep}{free}*{token}?)*)?$"


def _grouped(number: str) -> str:
    """``number`` with thousands separators ("12000" -> "12,000"), or "" if it has none."""
    whole, dot, frac = number.partition(".")
    if len(whole) < 4 or not whole.isdigit():
        return ""
    return f"{int(whole):,}{dot}{frac}"


def step_schema(
    specs: Mapping[str, SyscallSpec],
    journal: Iterable[Page],
    *,
    answer_max_chars: int = 300,
    values: bool = True,
    answer_only: bool = False,
    program: str = "",
    sources: Iterable[str] = (),
    guard_targets: bool = True,
    require_numbers: bool = True,
) -> dict[str, Any]:
    """The JSON schema of one step: a union over the callable, grounded syscalls.

    With ``answer_only`` the union is the ``answer`` syscall alone (a run's last step).
    ``program`` (the process's system text) and ``sources`` (``Policy.ground_sources``) add to
    what may ground a sensitive call's targets; ``guard_targets=False`` grounds them like any
    other call's (the monitor switched off). With ``require_numbers`` off, a syscall whose
    required number nothing in RAM can fill is offered anyway (that number is then left free).
    """
    pages = list(journal)
    ev = Evidence.from_pages(pages, program=program, sources=sources)
    evidence = _turn_has_evidence(pages)
    branches: list[dict[str, Any]] = []
    for name, spec in specs.items():
        args = arg_schema(spec.args)
        if name == "answer":
            text = args["properties"]["text"]
            text["maxLength"] = min(int(text.get("maxLength", answer_max_chars)), answer_max_chars)
            # once the turn has evidence (a result, a recalled page), the answer reports it:
            # its names must come from the conversation too
            text["pattern"] = answer_pattern(ev.numbers, ev.names if evidence else None)
        elif answer_only or not _ground(
            args, ev, sensitive=spec.sensitive and guard_targets, values=values,
            require=require_numbers,
        ):
            continue
        branches.append(
            {
                "type": "object",
                "properties": {"syscall": {"const": name}, "args": args},
                "required": ["syscall", "args"],
                "additionalProperties": False,
            }
        )
    return {"anyOf": branches, "x-guidance": dict(_JSON_FORM)}


def _turn_has_evidence(pages: list[Page]) -> bool:
    """True when the current turn (after the last user message) holds a result or recall."""
    for page in reversed(pages):
        if page.kind == "message" and page.role == "user" and not page.paged_in:
            return False
        if page.paged_in or (page.kind == "result" and not page.text.startswith("Fault:")):
            return True
    return False


def _ground(
    schema: dict[str, Any], ev: Evidence, *, sensitive: bool, values: bool, require: bool = True
) -> bool:
    """Narrow grounded fields in place; False if one of them has nothing to draw from."""
    trusted = "user_" if sensitive else ""
    required = set(schema.get("required", []))
    for key, prop in schema.get("properties", {}).items():
        kind = prop.pop(GROUNDED_KEY, None)
        if kind == "free":
            continue
        if kind is None:
            if values:
                grounded = _narrow_value(prop, getattr(ev, f"{trusted}words"),
                                         getattr(ev, f"{trusted}numbers"))
                if not grounded and key in required and require:
                    return False  # a number the call needs and the conversation lacks
            continue
        if kind == "text":
            words = getattr(ev, f"{trusted}words")
            if not words:
                return False
            prop["pattern"] = words_pattern(words)
        elif kind == "numbers":
            prop["pattern"] = expression_pattern(getattr(ev, f"{trusted}numbers"))
        elif kind in ("url", "path"):
            options = list(getattr(ev, f"{trusted}{kind}s"))
            if isinstance(prop.get("default"), str) and prop["default"] not in options:
                options.append(prop["default"])  # an optional field keeps its default
            if not options:
                return False
            prop["enum"] = options
            prop.pop("pattern", None)
    return True


def _narrow_value(prop: dict[str, Any], words: list[str], numbers: list[str]) -> bool:
    """Ground an undeclared argument by its JSON type; leave it alone where that cannot hold.

    Returns False for an integer or number field that nothing in the conversation can fill
    (no number, or none within its bounds): a call that needs it cannot be made yet.
    """
    if any(k in prop for k in ("enum", "const", "pattern", "format")):
        return True  # already a closed set or a shape of its own
    for branch in prop.get("anyOf", []):  # Optional[...] and unions
        if isinstance(branch, dict):
            _narrow_value(branch, words, numbers)
    kind = prop.get("type")
    if kind == "string" and words:
        prop["pattern"] = words_pattern(
            [*words, *([prop["default"]] if isinstance(prop.get("default"), str) else [])]
        )
    elif kind in ("integer", "number"):
        found: list[int | float] = []
        # only what the conversation says: small constants would let a worked example's
        # placeholder ("3") stand in for the number the user gave ("1940")
        for text in numbers:
            value = float(text)
            if kind == "integer":
                if not value.is_integer():
                    continue
                value = int(value)
            if _within(prop, value) and value not in found:
                found.append(value)
        if not found:
            return False
        prop["enum"] = found
    elif kind == "array" and isinstance(prop.get("items"), dict):
        _narrow_value(prop["items"], words, numbers)
    return True


def _within(prop: dict[str, Any], value: float) -> bool:
    lo, hi = prop.get("minimum"), prop.get("maximum")
    xlo, xhi = prop.get("exclusiveMinimum"), prop.get("exclusiveMaximum")
    return not (
        (lo is not None and value < lo) or (hi is not None and value > hi)
        or (xlo is not None and value <= xlo) or (xhi is not None and value >= xhi)
    )


def arg_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of a syscall's arguments as a step's grammar starts from (a fresh copy).

    It is normalised once per model: references inlined, objects with declared fields closed.
    The kernel calls this when a device is mounted, so a schema the grammar cannot use fails
    there, not at every step of a run.

    Raises:
        UsageError: the argument model is recursive, nested too deeply, or has no JSON schema.
    """
    return copy.deepcopy(_normalised(model))


@cache
def _normalised(model: type[BaseModel]) -> dict[str, Any]:
    try:
        schema = _closed(_inline_refs(model.model_json_schema()))
    except (RecursionError, PydanticUserError) as exc:
        raise UsageError(
            f"the argument model {model.__name__!r} has no usable JSON schema ({exc}); "
            "give the syscall plain, non-recursive arguments",
            code="schema",
        ) from exc
    schema.pop("title", None)
    return schema


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """Objects with declared fields take no others (pydantic would drop them anyway, after
    the model had spent tokens on them); free-form dicts stay open."""
    props = schema.get("properties")
    if isinstance(props, dict):
        for sub in props.values():
            if isinstance(sub, dict):
                _closed(sub)
        schema.setdefault("additionalProperties", False)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _closed(schema[key])
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for sub in schema.get(key, []):
            if isinstance(sub, dict):
                _closed(sub)
    return schema


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace ``$ref`` to ``$defs`` by the definitions themselves (no recursion allowed)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any, depth: int) -> Any:
        if depth > 32:
            raise RecursionError("the argument schema is recursive or nested too deeply")
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                target = copy.deepcopy(defs[ref.removeprefix("#/$defs/")])
                merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
                return walk(merged, depth + 1)
            return {k: walk(v, depth + 1) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, depth + 1) for v in node]
        return node

    result: dict[str, Any] = walk(schema, 0)
    return result
