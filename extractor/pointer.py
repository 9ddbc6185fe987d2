"""JSON Pointer (RFC 6901) and the walk through a JSON Schema: subschemas, local ``$ref``, the schema of a value.

Every place that names a location in a document or a schema uses this module: result fields and coercion logs
(``/items/0/price``), registry refusals (``/$defs/a/$ref``), the OpenAPI form of our own models.

References supported are the local ones, a URI fragment alone: ``#``, ``#/json/pointer`` (percent-decoded first,
as RFC 6901 section 6 asks, so ``#/$defs/a%25b`` names ``a%b``) and ``#name`` for a ``$anchor`` or
``$dynamicAnchor``. Each resolves against the schema resource that holds it: the nearest enclosing subschema with
an ``$id``, else the document. Any other reference (a URI, relative or absolute, even one naming an embedded
``$id``) is not followed here; the registry refuses it as remote. ``$dynamicRef`` is checked as ``$ref`` is, by its
static target; the loop check also counts every ``$dynamicAnchor`` of its name as a target.

Walks end on recursive schemas: the index and the loop check are iterative and visit each subschema once, a walk
along an instance follows each reference at most once per location and stops at ``MAX_WALK_DEPTH``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote

import regex

from extractor.patterns import PatternTimeoutError, search

__all__ = [
    "MAX_WALK_DEPTH",
    "PointerError",
    "SchemaDocument",
    "child_pointer",
    "escape_token",
    "format_pointer",
    "inline_refs",
    "item_schema",
    "iter_subschemas",
    "map_subschemas",
    "parse_pointer",
    "property_schema",
    "resolve_pointer",
    "unescape_token",
]

MAX_WALK_DEPTH: Final = 64
"""The deepest instance level a walk through a (possibly recursive) schema descends to."""


class PointerError(ValueError):
    """A pointer that is malformed or leads nowhere, or a reference that cannot be followed.

    ``pointer`` is where in the document the fault is (``/$defs/a/$ref``); callers translate this error into their
    own (the registry into ``InvalidSchemaError``), it never reaches the edge."""

    def __init__(self, message: str, *, pointer: str = "") -> None:
        super().__init__(message)
        self.pointer = pointer


# --- RFC 6901 --------------------------------------------------------------------------------------------------------

_BAD_TILDE: Final = re.compile(r"~(?![01])")
_INDEX: Final = re.compile(r"0|[1-9][0-9]*")


def escape_token(token: str | int) -> str:
    """One reference token as it appears in a pointer: ``~`` as ``~0``, ``/`` as ``~1``."""
    text = str(token)
    return text.replace("~", "~0").replace("/", "~1") if "~" in text or "/" in text else text


def unescape_token(token: str) -> str:
    """The key a reference token names; ``~1`` is decoded before ``~0`` so ``~01`` stays ``~1``."""
    if _BAD_TILDE.search(token):
        raise PointerError(f"{token!r}: '~' must be followed by 0 or 1")
    return token.replace("~1", "/").replace("~0", "~")


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """``"/a~1b/0"`` -> ``("a/b", "0")``; ``""`` (the whole document) -> ``()``."""
    if not pointer:
        return ()
    if not pointer.startswith("/"):
        raise PointerError(f"{pointer!r} is not a JSON Pointer: it must be empty or start with '/'")
    return tuple(unescape_token(token) for token in pointer[1:].split("/"))


def format_pointer(tokens: Iterable[str | int]) -> str:
    """``("a/b", 0)`` -> ``"/a~1b/0"``; no tokens -> ``""``."""
    return "".join(child_pointer("", token) for token in tokens)


def child_pointer(pointer: str, token: str | int) -> str:
    """``pointer`` extended by one key or array index."""
    return f"{pointer}/{escape_token(token)}"


def resolve_pointer(document: Any, pointer: str | Iterable[str]) -> Any:
    """The value ``pointer`` names in ``document``; array indexes are ``0`` or digits without a leading zero."""
    node = document
    for token in parse_pointer(pointer) if isinstance(pointer, str) else pointer:
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif isinstance(node, list) and _INDEX.fullmatch(token) and int(token) < len(node):
            node = node[int(token)]
        else:
            where = pointer if isinstance(pointer, str) else format_pointer(pointer)
            raise PointerError(f"{where!r} does not exist in the document (no {token!r})", pointer=where)
    return node


# --- subschemas ------------------------------------------------------------------------------------------------------

# Draft 2020-12 keywords whose values are subschemas (plus the older names a schema may still carry).
_SCHEMA_ONE: Final = (
    "additionalItems",
    "additionalProperties",
    "contains",
    "contentSchema",
    "else",
    "if",
    "items",
    "not",
    "propertyNames",
    "then",
    "unevaluatedItems",
    "unevaluatedProperties",
)
_SCHEMA_LIST: Final = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_MAP: Final = ("$defs", "definitions", "dependentSchemas", "patternProperties", "properties")
# Keywords that apply their subschemas to the same value (not to a member of it): a loop through these and
# references alone never ends.
_IN_PLACE: Final = frozenset({"allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas"})
_REF_KEYWORDS: Final = ("$ref", "$dynamicRef")


def iter_subschemas(schema: Any) -> Iterator[tuple[str, str, Any]]:
    """Every direct subschema of ``schema`` as ``(keyword, relative pointer, subschema)``, in document order."""
    if not isinstance(schema, Mapping):
        return
    for keyword, value in schema.items():
        if keyword in _SCHEMA_ONE and isinstance(value, Mapping | bool):
            yield keyword, child_pointer("", keyword), value
        elif keyword in _SCHEMA_LIST and isinstance(value, list):
            for index, member in enumerate(value):
                yield keyword, f"{child_pointer('', keyword)}/{index}", member
        elif keyword in _SCHEMA_MAP and isinstance(value, Mapping):
            for name, member in value.items():
                yield keyword, child_pointer(child_pointer("", keyword), name), member


def map_subschemas(schema: Mapping[str, Any], fn: Callable[[Any], Any]) -> dict[str, Any]:
    """A copy of ``schema`` with ``fn`` applied to every direct subschema (``schema`` itself is not changed)."""
    out = dict(schema)
    for keyword, value in schema.items():
        if keyword in _SCHEMA_ONE and isinstance(value, Mapping):
            out[keyword] = fn(value)
        elif keyword in _SCHEMA_LIST and isinstance(value, list):
            out[keyword] = [fn(member) for member in value]
        elif keyword in _SCHEMA_MAP and isinstance(value, Mapping):
            out[keyword] = {name: fn(member) for name, member in value.items()}
    return out


def property_schema(schema: Mapping[str, Any], key: str) -> Any:
    """The schema for member ``key`` of an object: ``properties``, else every matching ``patternProperties``
    (as an ``allOf``), else ``additionalProperties`` (``{}`` when absent)."""
    properties = schema.get("properties")
    if isinstance(properties, Mapping) and key in properties:
        return properties[key]
    patterns = schema.get("patternProperties")
    matching = (
        [sub for pattern, sub in patterns.items() if _search(pattern, key)] if isinstance(patterns, Mapping) else []
    )
    if matching:
        return {"allOf": matching}
    return schema.get("additionalProperties", {})


def item_schema(schema: Mapping[str, Any], index: int) -> Any:
    """The schema for member ``index`` of an array: ``prefixItems`` first, then ``items`` (``{}`` when absent)."""
    prefix = schema.get("prefixItems")
    if isinstance(prefix, list) and index < len(prefix):
        return prefix[index]
    return schema.get("items", {})


def _search(pattern: str, key: str) -> bool:
    """Whether a ``patternProperties`` pattern matches ``key``, with the engine and time limit validation uses; a
    pattern that is not one, or takes too long, does not match."""
    try:
        return search(pattern, key)
    except (regex.error, PatternTimeoutError):
        return False


# --- references ------------------------------------------------------------------------------------------------------

_Located = tuple[str, Any]  # (pointer in the document, value)


@dataclass(slots=True)
class _Index:
    """Built once per document: where each subschema lives and which resource (``$id``) holds it."""

    subschemas: list[_Located] = field(default_factory=list)
    homes: dict[int, _Located] = field(default_factory=dict)  # id(subschema) -> its resource
    anchors: dict[tuple[str, str], _Located] = field(default_factory=dict)  # (resource pointer, name) -> subschema
    dynamic: dict[str, list[_Located]] = field(default_factory=dict)  # $dynamicAnchor name -> every subschema


def _build_index(root: Any) -> _Index:
    index = _Index()
    stack: list[tuple[str, Any, _Located]] = [("", root, ("", root))]
    while stack:  # iterative: a schema nested past the interpreter's recursion limit is still walked
        pointer, node, home = stack.pop()
        if not isinstance(node, Mapping):
            continue
        if pointer and isinstance(node.get("$id"), str):
            home = (pointer, node)
        index.subschemas.append((pointer, node))
        index.homes[id(node)] = home
        for keyword in ("$anchor", "$dynamicAnchor"):
            name = node.get(keyword)
            if isinstance(name, str):
                index.anchors.setdefault((home[0], name), (pointer, node))
        if isinstance(node.get("$dynamicAnchor"), str):
            index.dynamic.setdefault(node["$dynamicAnchor"], []).append((pointer, node))
        children = [(pointer + suffix, child, home) for _, suffix, child in iter_subschemas(node)]
        stack.extend(reversed(children))
    return index


class SchemaDocument:
    """A JSON Schema whose local references can be followed (see the module's docstring for which ones).

    The document is indexed at the first reference followed, never copied or changed; keep it unchanged meanwhile.
    """

    def __init__(self, root: Any) -> None:
        self.root = root
        self._index: _Index | None = None
        self._located: dict[tuple[str, str], _Located] = {}  # (resource pointer, ref) -> target

    @property
    def _indexed(self) -> _Index:
        if self._index is None:
            self._index = _build_index(self.root)
        return self._index

    def locate(self, ref: str, at: Any = None) -> _Located:
        """``(pointer, target)`` of local reference ``ref`` written in subschema ``at`` (default: the root)."""
        if not ref.startswith("#"):
            raise PointerError(f"{ref!r} is not a local reference (it must start with '#')")
        home_pointer, home = self._indexed.homes.get(id(at), ("", self.root)) if at is not None else ("", self.root)
        found = self._located.get((home_pointer, ref))
        if found is None:
            found = self._located[home_pointer, ref] = self._locate_in(home_pointer, home, ref[1:])
        return found

    def _locate_in(self, home_pointer: str, home: Any, fragment: str) -> _Located:
        if not fragment or fragment.startswith("/"):
            pointer = unquote(fragment)
            return home_pointer + pointer, resolve_pointer(home, pointer)
        anchor = self._indexed.anchors.get((home_pointer, fragment))
        if anchor is None:
            raise PointerError(f"no $anchor {fragment!r} in this schema resource")
        return anchor

    def resolve(self, ref: str, at: Any = None) -> Any:
        """The subschema local reference ``ref`` (written in subschema ``at``) names; PointerError if none."""
        return self.locate(ref, at)[1]

    def follow(self, schema: Any) -> _Located | None:
        """``(pointer, target)`` of the ``$ref`` of ``schema``; None when it has none, or one not followed here."""
        ref = schema.get("$ref") if isinstance(schema, Mapping) else None
        if not isinstance(ref, str) or not ref.startswith("#"):
            return None
        try:
            return self.locate(ref, schema)
        except PointerError:
            return None

    def schemas_at(self, instance: Any, path: str) -> list[Any]:
        """Every subschema that may apply to the value at ``path`` in ``instance``: down ``properties``/
        ``patternProperties``/``additionalProperties`` and ``prefixItems``/``items``, through ``$ref``, ``allOf``,
        ``anyOf`` and ``oneOf`` (a branch is listed whether or not the value fits it)."""
        tokens = parse_pointer(path)
        if len(tokens) > MAX_WALK_DEPTH:
            raise PointerError(f"{path!r} is deeper than {MAX_WALK_DEPTH} levels", pointer=path)
        schemas, value = self._in_place(self.root), instance
        for token in tokens:
            step = _item_step if isinstance(value, list) else property_schema
            value = resolve_pointer(value, [token])
            children = [step(s, token) for s in schemas if isinstance(s, Mapping)]
            schemas = [found for child in children for found in self._in_place(child)]
        return schemas

    def _in_place(self, schema: Any) -> list[Any]:
        """``schema`` and every subschema it applies to the same value, each once (so recursion ends)."""
        found: dict[int, Any] = {}
        stack = [schema]
        while stack:
            node = stack.pop()
            if id(node) in found:
                continue
            found[id(node)] = node
            if isinstance(node, Mapping):
                target = self.follow(node)
                stack.extend([target[1]] if target is not None else [])
                stack.extend(sub for keyword in ("allOf", "anyOf", "oneOf") for sub in _members(node.get(keyword)))
        return list(found.values())

    def check_refs(self) -> None:
        """Raise PointerError, pointing at the ``$ref``, for a local reference that leads nowhere or to something not
        a schema, or that loops back without descending into the value (``{"$ref": "#"}``, ``a -> b -> a``,
        ``{"allOf": [{"$ref": "#"}]}``): a validator would recurse for ever. A recursive schema whose loop goes
        through ``properties`` or ``items`` (a tree) is fine: the value gets smaller at every turn."""
        done: set[int] = set()
        for pointer, node in self._indexed.subschemas:
            self._check_loops_from(pointer, node, done)

    def _check_loops_from(self, pointer: str, start: Any, done: set[int]) -> None:
        # Depth-first over in-place edges, iterative; a frame is (pointer, node, the $ref that led here, edges).
        path: list[tuple[str, Any, str | None, Iterator[tuple[str | None, str, Any]]]] = []
        on_path: set[int] = set()

        def enter(where: str, node: Any, via: str | None) -> None:
            path.append((where, node, via, self._in_place_edges(where, node)))
            on_path.add(id(node))

        if id(start) not in done:
            enter(pointer, start, None)
        while path:
            _, node, _, edges = path[-1]
            for via, target_pointer, target in edges:
                if not isinstance(target, Mapping) or id(target) in done:
                    continue
                if id(target) in on_path:
                    self._refuse_loop(path, via, target_pointer, target)
                enter(target_pointer, target, via)
                break
            else:
                path.pop()
                on_path.discard(id(node))
                done.add(id(node))

    def _in_place_edges(self, pointer: str, node: Mapping[str, Any]) -> Iterator[tuple[str | None, str, Any]]:
        """``(pointer of the $ref or None, target pointer, target)`` for what ``node`` applies to its own value."""
        for keyword, suffix, sub in iter_subschemas(node):
            if keyword in _IN_PLACE:
                yield None, pointer + suffix, sub
        for keyword in _REF_KEYWORDS:
            ref = node.get(keyword)
            if not isinstance(ref, str) or not ref.startswith("#"):
                continue  # remote references are the registry's to refuse
            where = child_pointer(pointer, keyword)
            try:
                target_pointer, target = self.locate(ref, node)
            except PointerError as exc:
                raise PointerError(f"{keyword} {ref!r} cannot be resolved: {exc}", pointer=where) from exc
            if not isinstance(target, Mapping | bool):
                raise PointerError(f"{keyword} {ref!r} points to {type(target).__name__}, not a schema", pointer=where)
            yield where, target_pointer, target
            if keyword == "$dynamicRef" and not ref[1:].startswith("/"):
                # The dynamic scope may pick any $dynamicAnchor of that name: count every one as a target.
                for anchor_pointer, anchor in self._indexed.dynamic.get(ref[1:], []):
                    yield where, anchor_pointer, anchor

    @staticmethod
    def _refuse_loop(
        path: list[tuple[str, Any, str | None, Iterator[Any]]], via: str | None, target_pointer: str, target: Any
    ) -> None:
        start = next(i for i, frame in enumerate(path) if frame[1] is target)
        loop = path[start:]
        # The loop's own edges: the one closing it and those entering each frame after its start.
        ref = via or next((frame[2] for frame in reversed(loop[1:]) if frame[2] is not None), target_pointer)
        chain = " -> ".join([frame[0] or "#" for frame in loop] + [target_pointer or "#"])
        raise PointerError(
            f"$ref cycle that never reaches a schema for a part of the value ({chain}): validating would never end",
            pointer=ref,
        )


def _item_step(schema: Mapping[str, Any], token: str) -> Any:
    return item_schema(schema, int(token))


def _members(raw: Any) -> list[Any]:
    return list(raw) if isinstance(raw, list) else []


def inline_refs(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` with every local ``$ref`` replaced by its target (the keywords beside the ``$ref`` win)
    and the root's ``$defs``/``definitions`` left out: for embedding where ``#`` means another document (OpenAPI).

    A recursive or unresolvable reference cannot be inlined: PointerError."""
    document = SchemaDocument(schema)

    def inline(node: Any, followed: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [inline(item, followed) for item in node]
        if not isinstance(node, Mapping):
            return node
        ref = node.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#"):
            return {key: inline(value, followed) for key, value in node.items()}
        pointer, target = document.locate(ref, node)
        if pointer in followed:
            raise PointerError(f"$ref {ref!r} is recursive: it cannot be inlined", pointer=pointer)
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        merged = {**target, **siblings} if isinstance(target, Mapping) else target
        return inline(merged, followed | {pointer})

    body = {key: value for key, value in schema.items() if key not in ("$defs", "definitions")}
    inlined: dict[str, Any] = inline(body, frozenset())
    return inlined
