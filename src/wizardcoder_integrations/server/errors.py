"""OpenAI-shaped error answers: ``{"error": {"message", "type", "param", "code"}}`` for every 4xx/5xx.

The status of a package error comes from the error hierarchy (``http_status`` and ``retry_after_s`` of
:mod:`wizardcoder_integrations.errors`): the caller's mistakes are 400, an overloaded or out-of-memory engine
is 503 with ``Retry-After``. Request validation, unknown routes and unexpected failures get the same shape.
"""

from __future__ import annotations

from typing import Any

from wizardcoder_integrations.errors import ConfigurationError

__all__ = ["InvalidRequest", "error_body", "error_response", "status_of", "validation_error"]

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 409: "conflict_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error", 503: "overloaded_error", 504: "timeout_error"}


class InvalidRequest(ConfigurationError):
    """A request the server refuses (HTTP ``status``, 400 by default); ``param`` names the offending field."""

    def __init__(self, message: str, param: str | None = None, *, code: str | None = "invalid_value",
                 status: int = 400) -> None:
        super().__init__(message)
        self.param, self.code, self.status = param, code, status


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None,
               kind: str | None = None) -> dict[str, Any]:
    """The JSON body of an error answer, as OpenAI writes it."""
    kind = kind if kind is not None else _TYPES.get(status, "server_error" if status >= 500 else
                                                    "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def status_of(exc: BaseException) -> tuple[int, int | None]:
    """The HTTP status of an exception and the ``Retry-After`` seconds that go with it (None: none)."""
    if isinstance(exc, InvalidRequest):
        return exc.status, 1 if exc.status in (429, 503) else None
    status = int(getattr(exc, "http_status", 400 if isinstance(exc, ConfigurationError) else 500))
    retry = getattr(exc, "retry_after_s", None)
    if retry is None and status in (429, 503):
        retry = 1
    return status, retry


def error_response(status: int, message: str, *, param: str | None = None, code: str | None = None,
                   kind: str | None = None, retry_after: int | None = None) -> Any:
    from fastapi.responses import JSONResponse

    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(error_body(status, message, param=param, code=code, kind=kind), status, headers=headers)


def validation_error(errors: list[dict[str, Any]]) -> Any:
    """A 400 for FastAPI's request validation errors: the first problem, with the field path as ``param``."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": "value_error"}
    loc = [p for p in first.get("loc", ()) if p != "body"]
    param = _path(loc) or None
    kind = first.get("type", "")
    if kind == "json_invalid":
        return error_response(400, "The request body is not valid JSON: "
                              f"{first.get('ctx', {}).get('error', first.get('msg'))}.", code="invalid_json")
    if kind == "extra_forbidden":
        return error_response(400, f"Unrecognized request argument supplied: {param}. This server refuses "
                              "arguments it does not honour; see docs/remote.md for the supported ones.",
                              param=param, code="unknown_parameter")
    if kind == "missing":
        return error_response(400, f"Missing required parameter: {param}.", param=param,
                              code="missing_required_parameter")
    got = first.get("input")
    shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
    where = param if param is not None else "the request body"
    return error_response(400, f"Invalid value for {where}: {first.get('msg')} (got {shown[:200]}).", param=param,
                          code="invalid_value")


def _path(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
