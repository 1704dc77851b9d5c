"""Errors of the web control plane: services raise them, the app renders ``{code, message}``.

Services know nothing of HTTP beyond the status each error maps to, so a route
never builds an error response by hand and every error body has the same shape.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error a client can act on; ``code`` is stable, ``message`` says what to do."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: Any = None,
    ):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class NotFoundError(ApiError):
    status = 404
    code = "not_found"


class ConflictError(ApiError):
    status = 409
    code = "conflict"


class InvalidInputError(ApiError):
    status = 422
    code = "invalid_input"


class UnauthorizedError(ApiError):
    status = 401
    code = "unauthorized"


class ForbiddenPathError(ApiError):
    """A path that would leave its root (``..``, absolute paths, symlinks out)."""

    status = 403
    code = "path_outside_root"


class UnavailableError(ApiError):
    status = 503
    code = "unavailable"


class SourceUnavailableError(ApiError):
    """A video the client pointed at cannot be fetched (4xx: the client's URL, not Coral, is at fault)."""

    status = 422
    code = "source_unavailable"


class TimeoutApiError(ApiError):
    status = 504
    code = "timeout"


class PayloadTooLargeError(ApiError):
    status = 413
    code = "payload_too_large"


def internal_error_body(request_id: str) -> dict[str, Any]:
    """What a client sees of a failure Coral did not foresee: no type, path or value, just the id to quote."""
    return {
        "code": "internal_error",
        "message": f"internal error (request {request_id}; the server log has the rest)",
        "request_id": request_id,
    }


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorBody"},
                "example": {"code": code, "message": message},
            }
        },
    }
    for status, description, code, message in [
        (
            401,
            "No API key, or a key that is not accepted",
            "invalid_api_key",
            "the API key is not accepted; send a valid key in the X-API-Key header",
        ),
        (404, "No such resource", "pipeline_not_found", "no pipeline with id 3f2a9c1b7d4e"),
        (422, "The request is not valid", "invalid_request", "body.source: field required"),
    ]
}
