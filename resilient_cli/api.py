"""The REST API as the command line sees it: one session, token auth, errors with the server's words."""

from __future__ import annotations

from typing import Any

import requests

DEFAULT_URL = "http://127.0.0.1:8000"


class ApiError(Exception):
    """The server refused (4xx/5xx) or could not be reached; ``str()`` is what to tell the user."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def describe(body: Any) -> str:
    """The server's error body as one readable line: field errors, batch items, or its detail."""
    if isinstance(body, dict):
        if "detail" in body:
            return str(body["detail"])
        if "error" in body:
            return str(body["error"])
        parts = []
        for field, problem in body.items():
            if isinstance(problem, dict):  # a batch: {"jobs": {"50": {"kind": ["..."]}}}
                for index, errors in problem.items():
                    parts += [f"item {index}: {name}: {'; '.join(map(str, msgs))}" for name, msgs in errors.items()]
            elif isinstance(problem, list):
                parts.append(f"{field}: {'; '.join(map(str, problem))}")
            else:
                parts.append(f"{field}: {problem}")
        return ", ".join(parts) or "bad request"
    return str(body)


class Client:
    """Calls ``url``'s API with ``token`` (``Authorization: Token <token>``)."""

    def __init__(self, *, url: str, token: str | None, timeout: float = 60.0) -> None:
        self.base = url.rstrip("/")
        self.timeout = timeout
        self.last_status: int | None = None  # of the last answer: 201 new, 200 a replay
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    def request(self, method: str, path: str, *, body: Any = None, params: dict | None = None) -> Any:
        """The decoded JSON answer of a 2xx; ``ApiError`` otherwise."""
        url = path if path.startswith("http") else f"{self.base}{path}"
        try:
            response = self.session.request(method, url, json=body, params=params, timeout=self.timeout)
        except requests.RequestException as error:
            hint = " (is it running? check RESILIENT_URL)" if isinstance(error, requests.ConnectionError) else ""
            raise ApiError(f"cannot reach {self.base}: {type(error).__name__}{hint}") from None
        self.last_status = response.status_code
        try:
            data = response.json()
        except ValueError:
            data = response.text.strip()[:500]
        if response.status_code >= 400:
            raise ApiError(f"{response.status_code} {response.reason}: {describe(data)}",
                           status=response.status_code, body=data)
        return data

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body=body)
