"""The OpenAPI document: raw JSON bodies documented, and an example on every operation.

Routes that parse their body themselves (for per-item errors and speed) still show its
schema (``json_body``). ``install_openapi`` then puts the examples of ``app.routes.examples``
where Swagger UI and ReDoc read them: a media type's ``example`` for every request body and
response whose schema is a named component, and a parameter's ``example`` (its own
``examples``, else the one for its name and place).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from app.routes.examples import PATH_PARAMETERS, QUERY_PARAMETERS, SCHEMAS

_components: dict[str, Any] = {}
_REF = "#/components/schemas/"


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the required JSON request body."""
    schema = model.model_json_schema(ref_template=_REF + "{model}")
    _components.update(schema.pop("$defs", {}))
    _components[model.__name__] = schema
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _REF + model.__name__}}},
        }
    }


def _media_example(media: dict[str, Any]) -> None:
    ref = media.get("schema", {}).get("$ref", "")
    name = ref.removeprefix(_REF)
    if "example" not in media and "examples" not in media and name in SCHEMAS:
        media["example"] = SCHEMAS[name]


def _parameter_example(parameter: dict[str, Any]) -> None:
    if "example" in parameter or "examples" in parameter:
        return
    declared = parameter.get("schema", {}).get("examples")
    if declared:
        parameter["example"] = declared[0]
        return
    defaults = {"path": PATH_PARAMETERS, "query": QUERY_PARAMETERS}.get(parameter["in"], {})
    if parameter["name"] in defaults:
        parameter["example"] = defaults[parameter["name"]]


def add_examples(document: dict[str, Any]) -> None:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                _parameter_example(parameter)
            bodies = [operation.get("requestBody", {}), *operation["responses"].values()]
            for body in bodies:
                for media in body.get("content", {}).values():
                    _media_example(media)


def install_openapi(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(_components)
            add_examples(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
