"""Errors of the client: the server's BoxLite error shape ({"error": {message, type, code}}) as exceptions."""


class BoxliteError(Exception):
    """Base of every error this package raises; `code` is the server's (not_found, invalid_state, …)."""

    def __init__(self, message: str, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


class AuthError(BoxliteError):
    """The key was missing or wrong (401)."""


class NotFoundError(BoxliteError):
    pass


class AlreadyExistsError(BoxliteError):
    pass


class InvalidStateError(BoxliteError):
    pass


class InvalidArgumentError(BoxliteError):
    pass


class TimeoutError(BoxliteError):  # noqa: A001 - BoxLite's name
    pass


class ExecError(BoxliteError):
    """A command that ran and failed (CodeBox.run)."""

    def __init__(self, command: str, exit_code: int, stderr: str):
        super().__init__(f"{command} exited with {exit_code}: {stderr.strip()}", "execution_failed")
        self.command = command
        self.exit_code = exit_code
        self.stderr = stderr


_BY_CODE = {
    "unauthenticated": AuthError,
    "not_found": NotFoundError,
    "already_exists": AlreadyExistsError,
    "invalid_state": InvalidStateError,
    "invalid_argument": InvalidArgumentError,
    "unsupported": InvalidArgumentError,
    "timeout": TimeoutError,
}


def from_response(status: int, body: dict | None, what: str) -> BoxliteError:
    err = (body or {}).get("error") or {}
    code = err.get("code")
    message = err.get("message") or f"{what}: the server answered {status}"
    return _BY_CODE.get(code, BoxliteError)(message, code, status)
