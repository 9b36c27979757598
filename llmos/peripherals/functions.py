"""Peripherals from function schemas: OpenAI-style definitions plus one handler.

Agent builders often hold their tools as JSON: a name, a description and a JSON Schema of the
parameters (the OpenAI ``tools`` format, an MCP server's ``inputSchema``). :class:`Functions`
turns such definitions into a device whose syscalls decode under those schemas: each schema
becomes a pydantic model (:func:`args_model`), so the kernel's grammar, validation and grounding
treat it exactly like a hand-written peripheral.

Translation rules (one per JSON Schema keyword; a keyword not listed is refused or ignored):
- ``type`` string, integer, number, boolean, null, array (``items``), object (``properties``,
  ``required``; a map from ``additionalProperties``); a list of types is a union;
- ``enum`` and ``const`` become ``Literal``; ``anyOf`` a union; ``allOf`` of one schema is that
  schema; ``$ref`` to ``#/$defs/...`` or ``#/definitions/...`` is inlined (not recursively);
- ``minimum``/``maximum`` (and exclusive), ``multipleOf``, ``minLength``/``maxLength``,
  ``pattern``, ``minItems``/``maxItems`` become pydantic constraints;
- ``description`` and ``default`` are kept; annotations (``title``, ``format``, ``examples``) and
  keywords outside JSON Schema are ignored, as the JSON Schema specification says;
- a property not in ``required`` may be left out (it is not nullable unless its type says so);
  keys outside ``properties`` are refused, so the model cannot invent parameters.

The keywords that change what is valid and that this table cannot express (``oneOf``, ``not``,
``if``, ``patternProperties``, ``uniqueItems``, a remote or recursive ``$ref``, ...) raise
:class:`~llmos.errors.UsageError` naming the keyword and the function, before any call runs.

Neighbours: ``llmos.peripherals.base`` defines the contract this device fulfils;
``llmos.peripherals.mcp`` builds its syscalls through :func:`args_model`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    create_model,
    model_serializer,
)

from llmos.errors import UsageError
from llmos.peripherals.base import _NAME, Example, Limits, Peripheral, SyscallSpec

__all__ = ["Functions", "args_model"]

Handler = Callable[[str, dict[str, Any]], object]
Refs = tuple[str, ...]

# Keywords that restrict what is valid and have no pydantic counterpart here: refusing them is
# the only honest answer (ignoring one would let the model send what the tool does not accept).
_UNSUPPORTED = (
    "oneOf", "not", "if", "then", "else", "patternProperties", "propertyNames",
    "dependentRequired", "dependentSchemas", "dependencies", "contains", "minContains",
    "maxContains", "prefixItems", "additionalItems", "unevaluatedProperties",
    "unevaluatedItems", "uniqueItems", "minProperties", "maxProperties", "$dynamicRef",
    "$recursiveRef",
)
# Each constraint applies to values of its own type only (as in JSON Schema itself).
_NUMERIC = {
    "minimum": "ge", "maximum": "le", "exclusiveMinimum": "gt", "exclusiveMaximum": "lt",
    "multipleOf": "multiple_of",
}
_CONSTRAINTS: dict[str, dict[str, str]] = {
    "integer": _NUMERIC,
    "number": _NUMERIC,
    "string": {"minLength": "min_length", "maxLength": "max_length", "pattern": "pattern"},
    "array": {"minItems": "min_length", "maxItems": "max_length"},
}
_SCALARS: dict[str, Any] = {
    "string": str, "integer": int, "number": float, "boolean": bool, "null": type(None),
}


def _model_name(text: str) -> str:
    words = re.split(r"[^A-Za-z0-9]", text)
    return "".join(w[:1].upper() + w[1:] for w in words if w) or "Function"


class _Args(BaseModel):
    """Base of every generated argument model: a left-out optional field stays left out.

    A schema's optional property without a default gets ``None`` as its pydantic default, and
    ``None`` is not a valid value of (say) an object; dumping it back would turn "not given"
    into an invalid argument when the kernel re-reads the call. So the dump drops it.
    """

    model_config = ConfigDict(extra="forbid")

    @model_serializer(mode="wrap")
    def _as_given(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name, spec in type(self).model_fields.items():
                if name not in self.model_fields_set and spec.default is None:
                    data.pop(spec.alias if info.by_alias and spec.alias else name, None)
        return data


class _Translator:
    """Turns one root schema into pydantic types; ``$ref`` resolves against that root.

    ``seen`` is the chain of ``$ref`` being inlined along the current path, to refuse recursion.
    """

    def __init__(self, root: Mapping[str, Any], function: str) -> None:
        self.root = root
        self.function = function

    def refuse(self, feature: str) -> UsageError:
        return UsageError(
            f"the schema of {self.function!r} uses {feature}, which llmos cannot decode; "
            "rewrite that part of the schema without it",
            code="schema-unsupported",
        )

    def model(self, schema: Mapping[str, Any], name: str, seen: Refs = ()) -> type[BaseModel]:
        """A pydantic model for an object schema (extra keys forbidden)."""
        required = set(schema.get("required", []))
        fields: dict[str, Any] = {}
        # Python-safe field names with the schema's names as aliases: real schemas have names
        # like "_class" or "schema" that pydantic refuses or that shadow BaseModel attributes.
        for i, (key, given) in enumerate(schema.get("properties", {}).items()):
            prop, inner = self.resolve(given, seen)
            kind = self.type(prop, name + _model_name(key), inner)
            desc = prop.get("description")
            default = ... if key in required else prop.get("default")
            fields[f"p{i}"] = (kind, Field(default, alias=key, description=desc))
        return create_model(_model_name(name) + "Args", __base__=_Args, **fields)

    def resolve(self, prop: Any, seen: Refs) -> tuple[Mapping[str, Any], Refs]:
        """``prop`` with a local ``$ref`` inlined (the referring schema's own keys win)."""
        if prop is True:
            return {}, seen
        if not isinstance(prop, Mapping):
            raise self.refuse(f"the schema {prop!r} where an object was expected")
        ref = prop.get("$ref")
        if ref is None:
            return prop, seen
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise self.refuse(f"a $ref to {ref!r} (only local references '#/...' are supported)")
        if ref in seen:
            raise self.refuse(f"a recursive $ref ({ref!r})")
        target: Any = self.root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or part not in target:
                raise self.refuse(f"a $ref to {ref!r}, which points nowhere in the schema")
            target = target[part]
        inner, chain = self.resolve(target, (*seen, ref))
        return {**inner, **{k: v for k, v in prop.items() if k != "$ref"}}, chain

    def type(self, prop: Mapping[str, Any], where: str, seen: Refs) -> Any:
        """The Python type of one resolved schema, constraints included."""
        for key in _UNSUPPORTED:
            if key in prop:
                raise self.refuse(f"the keyword {key!r}")
        kind = self._bare(prop, where, seen)
        known = _CONSTRAINTS.get(prop["type"], {}) if isinstance(prop.get("type"), str) else {}
        limits = {arg: prop[key] for key, arg in known.items() if key in prop}
        return Annotated[kind, Field(**limits)] if limits else kind

    def _bare(self, prop: Mapping[str, Any], where: str, seen: Refs) -> Any:
        if prop.get("enum"):
            return Literal[tuple(prop["enum"])]
        if "const" in prop:
            return Literal[prop["const"]]
        if "anyOf" in prop:
            return self._union(prop["anyOf"], where, seen, "anyOf")
        if "allOf" in prop:
            parts = prop["allOf"]
            if not isinstance(parts, list) or len(parts) != 1:
                raise self.refuse("'allOf' with more than one schema")
            return self._union(parts, where, seen, "allOf")
        kind = prop.get("type")
        if isinstance(kind, list):
            return self._union([{**prop, "type": k} for k in kind], where, seen, "type")
        if kind is None:
            return Any
        if kind in _SCALARS:
            return _SCALARS[kind]
        if kind == "array":
            items = prop.get("items")
            if isinstance(items, list):
                raise self.refuse("'items' as a list (a tuple schema)")
            if items is None:
                return list[Any]
            item, inner = self.resolve(items, seen)
            return list[self.type(item, where + "Item", inner)]  # type: ignore[misc]
        if kind == "object":
            if prop.get("properties"):
                return self.model(prop, where, seen)
            extra = prop.get("additionalProperties")
            if isinstance(extra, Mapping):
                value, inner = self.resolve(extra, seen)
                return dict[str, self.type(value, where + "Value", inner)]  # type: ignore[misc]
            return dict[str, Any]
        raise self.refuse(f"the type {kind!r}")

    def _union(self, options: Any, where: str, seen: Refs, keyword: str) -> Any:
        if not isinstance(options, list) or not options:
            raise self.refuse(f"an empty or malformed {keyword!r}")
        kinds = []
        for i, option in enumerate(options):
            resolved, inner = self.resolve(option, seen)
            kinds.append(self.type(resolved, where if len(options) == 1 else f"{where}{i}", inner))
        return kinds[0] if len(kinds) == 1 else Union[tuple(kinds)]  # noqa: UP007


def args_model(schema: Mapping[str, Any], name: str) -> type[BaseModel]:
    """A pydantic model for the JSON Schema of a function's parameters (extra keys forbidden).

    Raises:
        UsageError: the schema is not an object schema, or uses a keyword llmos cannot decode
            (the message names it).
    """
    kind = schema.get("type", "object")
    if kind != "object":
        raise UsageError(
            f"the parameters of {name!r} must be a JSON object schema (got type {kind!r})",
            code="schema-unsupported",
        )
    translator = _Translator(schema, name)
    for key in _UNSUPPORTED:
        if key in schema:
            raise translator.refuse(f"the keyword {key!r}")
    return translator.model(schema, name)


def _definition(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """The function inside ``{"type": "function", "function": {...}}``, or ``item`` itself."""
    inner = item.get("function")
    return inner if item.get("type") == "function" and isinstance(inner, Mapping) else item


class Functions(Peripheral):
    """Functions declared by JSON schema, each one a syscall, all served by one handler.

    ```python
    def handle(name: str, args: dict[str, Any]) -> object:
        return {"city": args["city"], "sky": "clear"}

    weather = Functions([{
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Today's weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }], handle)
    ```

    Each syscall is named by its function's name exactly (wrap the device in ``Prefixed`` to
    namespace them). The handler receives the name and the arguments (by their schema names,
    schema defaults filled in, optional ones without a default left out when the model left them
    out) and returns what any syscall may return.

    Args:
        functions: OpenAI-style definitions, bare or wrapped as ``{"type": "function", ...}``.
        handler: called as ``handler(name, args)``; raise :class:`~llmos.errors.Fault` to tell
            the model what went wrong.
        name: the device's name (provenance of its results, and in error messages).
        limits: what the kernel enforces around each call.
        sensitive: ``True`` marks every function sensitive; a collection marks those named.
        pure: ``True`` (or a collection of names) declares results that are a function of
            the arguments alone, trusted when the arguments were; others are untrusted.
        examples: worked examples shown to the model.

    Raises:
        UsageError: a definition has no valid name, two share one, or a schema uses a feature
            llmos cannot decode (named in the message).
    """

    def __init__(
        self,
        functions: Iterable[Mapping[str, Any]],
        handler: Handler,
        *,
        name: str = "functions",
        limits: Limits | None = None,
        sensitive: bool | Collection[str] = False,
        examples: Iterable[Example] = (),
        pure: bool | Collection[str] = False,
    ) -> None:
        self.name = name
        self.handler = handler
        if limits is not None:
            self.limits = limits
        self.examples = tuple(examples)
        self._specs: dict[str, SyscallSpec] = {}
        for item in functions:
            fn = _definition(item)
            fname = str(fn.get("name", ""))
            if not _NAME.match(fname):
                raise UsageError(
                    f"function name {fname!r} must be letters, digits, '_', '.' or '-'",
                    code="peripheral-name",
                )
            if fname in self._specs:
                raise UsageError(f"two functions are named {fname!r}", code="syscall-duplicate")
            marked = sensitive if isinstance(sensitive, bool) else fname in set(sensitive)
            vouched = pure if isinstance(pure, bool) else fname in set(pure)
            self._specs[fname] = SyscallSpec(
                name=fname,
                method=fname,
                args=args_model(fn.get("parameters") or {}, fname),
                doc=" ".join(str(fn.get("description", fname)).split()),
                sensitive=marked,
                pure=vouched,
            )
        if not self._specs:
            raise UsageError(f"{name!r} was given no functions", code="peripheral-empty")

    @property
    def description(self) -> str:
        """The one function's description, or the list of function names."""
        if len(self._specs) == 1:
            return next(iter(self._specs.values())).doc
        return "Functions: " + ", ".join(self._specs)

    def syscalls(self) -> dict[str, SyscallSpec]:
        return dict(self._specs)

    def call(self, method: str, args: BaseModel) -> object:
        values = args.model_dump(mode="json", by_alias=True)
        return self.handler(method, values)  # rendered and checked by the kernel
