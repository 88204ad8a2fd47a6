"""Validate JSON-RPC results against the official Ethereum execution-apis schemas.

The OpenRPC sources of https://github.com/ethereum/execution-apis are vendored,
unchanged, in ``tests/conformance/execution_apis/`` (see the ``README.md`` and
``SOURCE.md`` there for the upstream commit).  This module loads them and checks
that a method's *result* conforms to the method's ``result.schema``:

* ``src/eth/*.yaml`` and ``src/debug/*.yaml`` are YAML lists of OpenRPC method
  objects (``name``, ``params``, ``result: {name, schema}``, ...).
* ``src/schemas/*.yaml`` are mappings ``Name -> JSON Schema``.  Upstream merges
  them into the OpenRPC document's ``components.schemas`` and refers to them as
  ``$ref: '#/components/schemas/<Name>'``.  We do the same: every validation
  uses a root document ``{..result schema.., "components": {"schemas": ...}}``
  so those references resolve against the root.

Validation follows JSON Schema Draft 2019-09, the dialect upstream's own
``speccheck`` tool validates results with (for these schemas it is equivalent
to Draft 2020-12: they use no tuple ``items`` and no ``unevaluated*``).  Two
deliberate refinements of the stock ``jsonschema`` behaviour:

* ``pattern`` uses ECMA-262 end-of-input semantics for a trailing ``$``.
  Python's ``re`` lets ``$`` match before a final newline, so stock
  ``jsonschema`` would accept ``"0x1\\n"`` as a ``uint``; we don't.
* ``oneOf`` produces short messages (no multi-kilobyte ``repr`` of a block)
  and keeps every branch's errors, so failures can be explained per branch.
  Exactly-one semantics are kept by default.  Upstream has unions whose
  branches overlap: ``FilterResults`` (the ``eth_getLogs`` /
  ``eth_getFilterChanges`` / ``eth_getFilterLogs`` result) is ``oneOf`` [array
  of hashes, array of ``Log``], so an *empty array* matches both branches
  and is invalid when the schema is read strictly.  Pass
  ``allow_ambiguous_one_of=True`` to accept a value that matches more than
  one ``oneOf`` branch.

Typical use::

    from openrpc import validate_result

    block = rpc("eth_getBlockByNumber", ["latest", True])
    validate_result("eth_getBlockByNumber", block)   # AssertionError if invalid
    validate_result("eth_getLogs", [], allow_ambiguous_one_of=True)

``tests/conformance`` has no ``__init__.py``.  Pytest's default ``prepend``
import mode puts that directory on ``sys.path``, so test modules there import
this file as ``openrpc``.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft201909Validator, ValidationError, validators
from jsonschema.exceptions import relevance
from jsonschema.protocols import Validator

__all__ = [
    "SPEC_DIR",
    "component_names",
    "component_schema",
    "method",
    "method_names",
    "result_errors",
    "result_schema",
    "validate_component",
    "validate_result",
]

#: Root of the vendored execution-apis files.
SPEC_DIR: Path = Path(__file__).resolve().parent / "execution_apis"

#: Sub-directories of ``src/`` that hold method definitions.
METHOD_DIRS: tuple[str, ...] = ("eth", "debug")

#: Dialect used for validation (see the module docstring).
DIALECT: str = "https://json-schema.org/draft/2019-09/schema"

_REF_PREFIX = "#/components/schemas/"
_MAX_VALUE_REPR = 80


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    """The loaded execution-apis definitions (treat as read-only)."""

    methods: Mapping[str, Mapping[str, Any]]
    schemas: Mapping[str, Any]


def _read_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@functools.cache
def _spec() -> _Spec:
    """Load all method definitions and component schemas (cached)."""
    src = SPEC_DIR / "src"
    if not src.is_dir():
        raise FileNotFoundError(f"execution-apis sources not found at {src}")

    schemas: dict[str, Any] = {}
    schema_files = sorted((src / "schemas").glob("*.yaml"))
    if not schema_files:
        raise FileNotFoundError(f"no schema files in {src / 'schemas'}")
    for path in schema_files:
        doc = _read_yaml(path)
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: expected a mapping of schema names to schemas")
        for name, schema in doc.items():
            if name in schemas:
                raise ValueError(f"{path}: schema {name!r} is defined more than once")
            schemas[name] = schema

    methods: dict[str, Mapping[str, Any]] = {}
    for sub in METHOD_DIRS:
        for path in sorted((src / sub).glob("*.yaml")):
            doc = _read_yaml(path)
            if not isinstance(doc, list):
                raise ValueError(f"{path}: expected a list of OpenRPC method objects")
            for entry in doc:
                name = entry.get("name") if isinstance(entry, dict) else None
                if not isinstance(name, str):
                    raise ValueError(f"{path}: method object without a name: {entry!r:.80}")
                if name in methods:
                    raise ValueError(f"{path}: method {name!r} is defined more than once")
                if "schema" not in entry.get("result", {}):
                    raise ValueError(f"{path}: method {name!r} has no result.schema")
                methods[name] = entry
    if not methods:
        raise FileNotFoundError(f"no method definitions under {src}")
    return _Spec(methods=methods, schemas=schemas)


def method_names() -> list[str]:
    """Return the sorted names of all methods defined by the vendored spec."""
    return sorted(_spec().methods)


def component_names() -> list[str]:
    """Return the sorted names of all ``components.schemas`` entries."""
    return sorted(_spec().schemas)


def method(name: str) -> dict[str, Any]:
    """Return (a deep copy of) the OpenRPC method object for ``name``."""
    return copy.deepcopy(dict(_method(name)))


def _method(name: str) -> Mapping[str, Any]:
    try:
        return _spec().methods[name]
    except KeyError:
        raise KeyError(
            f"unknown method {name!r} (not in execution-apis src/eth, src/debug)"
        ) from None


def result_schema(method: str) -> dict[str, Any]:
    """Return (a deep copy of) ``result.schema`` of ``method``, ``$ref``\\ s unresolved."""
    return copy.deepcopy(_method(method)["result"]["schema"])


def component_schema(name: str) -> dict[str, Any]:
    """Return (a deep copy of) ``components.schemas[name]``, ``$ref``\\ s unresolved."""
    try:
        return copy.deepcopy(_spec().schemas[name])
    except KeyError:
        raise KeyError(f"unknown component schema {name!r}") from None


# --------------------------------------------------------------------------
# Validator
# --------------------------------------------------------------------------


@functools.cache
def _compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a JSON Schema ``pattern`` with ECMA-262 ``$`` (end of input)."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(
    validator: Validator, pattern: str, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _compile_pattern(pattern).search(instance):
        yield ValidationError(f"{_short(instance)} does not match {pattern!r}")


def _make_one_of(allow_ambiguous: bool) -> Any:
    def one_of(
        validator: Any, subschemas: list[Any], instance: Any, schema: Any
    ) -> Iterator[ValidationError]:
        all_errors: list[ValidationError] = []
        matched: list[int] = []
        for index, subschema in enumerate(subschemas):
            errs = list(validator.descend(instance, subschema, schema_path=index))
            if errs:
                all_errors.extend(errs)
            else:
                matched.append(index)
        if not matched:
            yield ValidationError(
                f"matches none of the {len(subschemas)} oneOf branches "
                f"({', '.join(_branch_label(subschemas, i) for i in range(len(subschemas)))})",
                context=all_errors,
            )
        elif len(matched) > 1 and not allow_ambiguous:
            labels = ", ".join(_branch_label(subschemas, i) for i in matched)
            yield ValidationError(
                f"{_short(instance)} matches more than one oneOf branch ({labels}) but oneOf "
                "requires exactly one; this is an ambiguity of the upstream schema, pass "
                "allow_ambiguous_one_of=True to accept it"
            )

    return one_of


_STRICT = validators.extend(
    Draft201909Validator, {"pattern": _pattern, "oneOf": _make_one_of(False)}
)
_LENIENT = validators.extend(
    Draft201909Validator, {"pattern": _pattern, "oneOf": _make_one_of(True)}
)


def _root_document(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Embed ``schema`` in a root that also holds ``components.schemas``."""
    if "components" in schema:
        raise ValueError("schema unexpectedly defines 'components' itself")
    root: dict[str, Any] = {"$schema": DIALECT}
    root.update(copy.deepcopy(dict(schema)))
    root["components"] = {"schemas": copy.deepcopy(dict(_spec().schemas))}
    return root


@functools.cache
def _validator(kind: str, name: str, allow_ambiguous_one_of: bool) -> Validator:
    """Build (once) the validator for a method's result or a component schema."""
    if kind == "method":
        schema: Mapping[str, Any] = _method(name)["result"]["schema"]
    elif name in _spec().schemas:
        schema = {"$ref": _REF_PREFIX + name}
    else:
        raise KeyError(f"unknown component schema {name!r}")
    root = _root_document(schema)
    cls = _LENIENT if allow_ambiguous_one_of else _STRICT
    cls.check_schema(root)
    return cls(root)


# --------------------------------------------------------------------------
# Error reporting
# --------------------------------------------------------------------------


def _short(value: Any) -> str:
    text = repr(value)
    if len(text) > _MAX_VALUE_REPR:
        text = text[: _MAX_VALUE_REPR - 3] + "..."
    return text


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _branch_label(subschemas: list[Any], index: int) -> str:
    sub = subschemas[index] if 0 <= index < len(subschemas) else None
    label = f"#{index}"
    if isinstance(sub, dict):
        ref = sub.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
            label += " " + ref[len(_REF_PREFIX) :]
        elif isinstance(sub.get("title"), str):
            label += f" {sub['title']!r}"
    return label


def _path(error: ValidationError) -> str:
    """JSON path of the offending value, e.g. ``$.transactions[0].r``."""
    return str(error.json_path)


def _describe(error: ValidationError) -> str:
    """A one-line description of ``error`` without huge instance reprs."""
    if error.validator == "type":
        return f"expected type {error.validator_value!r}, got {_json_type(error.instance)}"
    if error.validator == "anyOf":
        return f"matches none of the {len(error.validator_value)} anyOf branches"
    if error.validator == "enum":
        return f"{_short(error.instance)} is not one of {error.validator_value!r}"
    if error.validator == "const":
        return f"{_short(error.instance)} is not {error.validator_value!r}"
    message = str(error.message)
    if len(message) > 300:
        message = message[:297] + "..."
    return message


def _not_applicable(branch: list[ValidationError], base_depth: int) -> str | None:
    """Why a ``oneOf``/``anyOf`` branch obviously targets another shape, if it does.

    A branch is "not applicable" if the value (or an item of the array) has a
    different JSON type than the branch expects, or if a ``type`` discriminator
    property does not match (e.g. ``"0x2"`` against the ``^0x4$`` of EIP-7702).
    """
    for err in branch:
        path = err.absolute_path
        depth = len(path)
        if err.validator == "type" and (
            depth == base_depth or (depth == base_depth + 1 and isinstance(path[-1], int))
        ):
            return f"{_path(err)}: {_describe(err)}" if depth > base_depth else _describe(err)
        if (
            err.validator in {"pattern", "const", "enum"}
            and depth == base_depth + 1
            and path[-1] == "type"
        ):
            return f"{_path(err)}: {_describe(err)}"
    return None


def _group_by_branch(error: ValidationError) -> dict[int, list[ValidationError]]:
    groups: dict[int, list[ValidationError]] = {}
    for sub in error.context or ():
        index = sub.relative_schema_path[0] if sub.relative_schema_path else -1
        groups.setdefault(int(index), []).append(sub)
    return groups


def _sort_key(error: ValidationError) -> tuple[Any, ...]:
    """Order errors by instance path (array indices numerically), then keyword."""
    path = tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in error.absolute_path)
    return (path, str(error.validator))


def _render(errors: Iterable[ValidationError], indent: int, out: list[str]) -> None:
    pad = "  " * indent
    for err in sorted(errors, key=_sort_key):
        if err.validator in {"oneOf", "anyOf"} and err.context:
            out.append(f"{pad}- {_path(err)}: {_describe(err)}")
            groups = _group_by_branch(err)
            depth = len(err.absolute_path)
            candidates = {i: g for i, g in groups.items() if _not_applicable(g, depth) is None}
            for index in sorted(groups):
                label = _branch_label(err.validator_value, index)
                reason = _not_applicable(groups[index], depth)
                if reason is not None and candidates:
                    out.append(f"{pad}    {err.validator} {label}: not applicable ({reason})")
                elif reason is not None:
                    out.append(f"{pad}    {err.validator} {label}: {reason}")
                else:
                    out.append(f"{pad}    {err.validator} {label}:")
                    _render(groups[index], indent + 3, out)
        else:
            out.append(f"{pad}- {_path(err)}: {_describe(err)}")


def _most_relevant(errors: list[ValidationError]) -> ValidationError | None:
    """The single most useful error, descending only into applicable branches.

    ``best_match`` alone descends into ``oneOf``/``anyOf`` context by depth, so
    for a transaction it would report the ``type`` mismatch of some *other*
    transaction type's branch.  Here we descend only while exactly one branch
    is applicable (see :func:`_not_applicable`); otherwise the ``oneOf`` error
    itself is the answer and the rendered tree has the per-branch details.
    """
    if not errors:
        return None
    best = max(errors, key=relevance)
    while best.validator in {"oneOf", "anyOf"} and best.context:
        depth = len(best.absolute_path)
        applicable = [
            group
            for group in _group_by_branch(best).values()
            if _not_applicable(group, depth) is None
        ]
        if len(applicable) != 1:
            break
        best = max(applicable[0], key=relevance)
    return best


def _report(errors: list[ValidationError]) -> list[str]:
    """Render ``errors``: the most relevant one first, then all of them as a tree."""
    lines: list[str] = []
    _render(errors, 0, lines)
    best = _most_relevant(errors)
    if best is not None and not (
        len(lines) == 1 and lines[0] == f"- {_path(best)}: {_describe(best)}"
    ):
        lines.insert(0, f"most relevant: {_path(best)}: {_describe(best)}")
    return lines


def result_errors(method: str, result: Any, *, allow_ambiguous_one_of: bool = False) -> list[str]:
    """Return human-readable violations of ``method``'s result schema (empty if valid).

    The first line is the most relevant violation; the following lines list
    every violation (``<JSON path>: <message>``), with ``oneOf``/``anyOf``
    failures broken down per branch and indented.
    """
    validator = _validator("method", method, allow_ambiguous_one_of)
    return _report(list(validator.iter_errors(result)))


def validate_result(method: str, result: Any, *, allow_ambiguous_one_of: bool = False) -> None:
    """Assert that ``result`` conforms to ``method``'s execution-apis result schema.

    Raises:
        KeyError: ``method`` is not defined by the vendored spec.
        AssertionError: ``result`` violates the schema; the message lists every
            violation with its JSON path.
    """
    lines = result_errors(method, result, allow_ambiguous_one_of=allow_ambiguous_one_of)
    if lines:
        raise AssertionError(
            f"{method} result does not conform to the execution-apis schema:\n" + "\n".join(lines)
        )


def validate_component(name: str, instance: Any, *, allow_ambiguous_one_of: bool = False) -> None:
    """Assert that ``instance`` conforms to ``components.schemas[name]`` (e.g. ``"Log"``).

    Raises ``KeyError`` for an unknown schema name and ``AssertionError`` (same
    format as :func:`validate_result`) if ``instance`` is invalid.
    """
    validator = _validator("component", name, allow_ambiguous_one_of)
    lines = _report(list(validator.iter_errors(instance)))
    if lines:
        raise AssertionError(
            f"value does not conform to execution-apis schema {name}:\n" + "\n".join(lines)
        )
