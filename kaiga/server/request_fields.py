"""The request's fields as HTTP body fields, derived from `GenerationRequest` for every API.

Each API body is `request_body(...)` plus its own fields: it names only the request fields it takes
under another name (`rename`) or not at all (`exclude`), and every other field of the request is a
body field under its own name, with the request's type, description and range in the OpenAPI schema.
Body fields are optional (None: the request's default) and loosely typed: the range is checked once,
by `GenerationRequest`, so a bad value gets the same message naming the field through every API.

Example:
    >>> FIELDS = taken_fields(exclude=("init_image", "mask", "strength"), rename={"guidance": "cfg_scale"})
    >>> Body = request_body("Body", FIELDS)
    >>> request_values(Body(prompt="a red car", cfg_scale=4, truncation=0.5), FIELDS)
    {'prompt': 'a red car', 'guidance': 4.0, 'truncation': 0.5}
"""

from __future__ import annotations

from typing import Iterable

from pydantic import BaseModel, Field, create_model

from kaiga.request import FieldSpec, field_specs


def _schema(spec: FieldSpec) -> dict:
    """The request's constraints, shown to clients in the OpenAPI schema (checked by the request itself)."""
    schema = {}
    if spec.range is not None:
        schema |= {"minimum": spec.range[0], "maximum": spec.range[1]}
    if spec.choices:
        schema["enum"] = list(spec.choices)
    if spec.max_length is not None:
        schema["maxLength"] = spec.max_length
    return schema


def body_field(spec: FieldSpec):
    """(annotation, FieldInfo) of a request field as an optional body field."""
    return spec.type | None, Field(None, description=spec.help, json_schema_extra=_schema(spec) or None)


def taken_fields(*, exclude: Iterable[str] = (), rename: dict[str, str] | None = None) -> dict[str, str]:
    """The request fields an API takes, each to the API's name for it: all but `exclude`, `rename`d or not."""
    rename, exclude = rename or {}, set(exclude)
    return {name: rename.get(name, name) for name in field_specs() if name not in exclude}


def request_body(model_name: str, fields: dict[str, str], *, base: type[BaseModel] = BaseModel,
                 doc: str | None = None) -> type[BaseModel]:
    """A pydantic model with the request fields `fields` (request name -> body name), each optional."""
    specs = field_specs()
    return create_model(model_name, __base__=base, __doc__=doc,
                        **{theirs: body_field(specs[ours]) for ours, theirs in fields.items()})


def request_values(body: BaseModel, fields: dict[str, str]) -> dict:
    """The request fields `fields` that a body sets, by the request's names; None (the default) left out."""
    return {ours: value for ours, theirs in fields.items() if (value := getattr(body, theirs)) is not None}
