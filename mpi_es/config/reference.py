"""The config reference, generated from the schema itself (the docs site shows it), so it
cannot drift from what the code accepts."""
from __future__ import annotations

import ast
import functools
import inspect
import json
import textwrap
import types
import typing
from typing import Any

from pydantic import BaseModel

from .. import algorithms, policies
from ..plugins import is_reference
from .schema import Config
from .sections import ModelBase


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " \\| ".join(names) + (" \\| null" if type(None) in args else "")
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    return getattr(annotation, "__name__", str(annotation))


def _default(value: Any) -> str:
    if isinstance(value, BaseModel):
        return "(section)"
    return f"`{json.dumps(value)}`" if value is not None else "`null`"


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


@functools.cache
def _docstrings(cls: type) -> dict[str, str]:
    """The string literal under each annotated attribute of a class's own source."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):          # built at run time: no source of its own
        return {}
    body = tree.body[0].body
    docs = {}
    for field, after in zip(body, body[1:]):
        if (isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[field.target.id] = " ".join(after.value.value.split())
    return docs


def describe(model: type[BaseModel], name: str) -> str:
    """A key's description: the docstring under it in the class that declares it."""
    for cls in model.__mro__:
        if name in cls.__dict__.get("__annotations__", {}):
            return _docstrings(cls).get(name, "")
    return ""


def rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default, description) of every key of a section, nested ones too."""
    out = []
    for name, field in model.model_fields.items():
        key = prefix + name
        if _is_section(field.annotation):
            out.append((key, "section", "", describe(model, name)))
            out += rows(field.annotation, key + ".")
            continue
        default = "required" if field.is_required() else _default(field.default)
        out.append((key, _type_name(field.annotation), default, describe(model, name)))
    return out


def table(model_rows: list[tuple[str, str, str, str]]) -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    lines += [f"| `{key}` | {kind} | {default} | {text} |" for key, kind, default, text in model_rows
              if kind != "section"]
    return "\n".join(lines)


def markdown() -> str:
    """The whole reference: the keys every run has, each policy family's model keys, and each
    algorithm's section."""
    base = [r for r in rows(Config) if not r[0].startswith("model.")]
    parts = ["## Every run", "", table(base), "",
             "## model (every network)", "", table(rows(ModelBase, "model.")), ""]
    for name, family in policies.REGISTRY.items():
        if is_reference(name) or family.Settings is None:
            continue
        parts += [f"## model, with `network: {name}`", "", (family.__doc__ or "").strip(), "",
                  table(rows(family.Settings, "model.")), ""]
    for name, algorithm in algorithms.REGISTRY.items():
        key = algorithm.section_key()
        if is_reference(name) or key is None:
            continue
        fixed = ", ".join(f"`{k}`" for k in algorithm.fixed_settings(algorithm.Settings()))
        parts += [f"## {key}, with `algorithm: {name}`", "",
                  (algorithm.__doc__ or "").strip(), "",
                  table(rows(algorithm.Settings, key + ".")), "",
                  f"It fixes {fixed} from these values: set them only to those values, "
                  f"or not at all." if fixed else "", ""]
    return "\n".join(parts)
