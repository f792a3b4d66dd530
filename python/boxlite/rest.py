"""The REST transport: JSON calls with a bearer key (stdlib urllib, run off the event loop) and the attach
WebSocket (websockets), as BoxLite's API defines them."""

import asyncio
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request

from .errors import BoxliteError, from_response


class ApiKeyCredential:
    """A long-lived API key (BoxLite's ApiKeyCredential)."""

    def __init__(self, key: str):
        if not isinstance(key, str) or not key:
            raise ValueError("ApiKeyCredential: the key must be a non-empty string")
        self._key = key

    @classmethod
    def from_env(cls) -> "ApiKeyCredential | None":
        """From BOXLITE_API_KEY; None when it is unset or empty."""
        key = os.environ.get("BOXLITE_API_KEY")
        return cls(key) if key else None

    def get_token(self) -> str:
        return self._key

    def __repr__(self) -> str:
        return "ApiKeyCredential(…)"  # never the key


class BoxliteRestOptions:
    """BoxLite's options for Boxlite.rest(): the server's URL and a credential."""

    def __init__(self, url: str, credential: ApiKeyCredential | None = None, prefix: str | None = None):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"the server URL {url!r} must be http(s)://HOST:PORT")
        self.url = url.rstrip("/")
        self.credential = credential
        self.prefix = prefix


class Rest:
    def __init__(self, options: BoxliteRestOptions, ssl_context: ssl.SSLContext | None = None):
        self.base = options.url
        self.credential = options.credential
        self.ssl = ssl_context
        self.boxes = "/v1" + (f"/{options.prefix}" if options.prefix else "") + "/boxes"

    def _headers(self, extra: dict | None = None) -> dict:
        h = dict(extra or {})
        if self.credential is not None:
            h["Authorization"] = f"Bearer {self.credential.get_token()}"
        return h

    def box(self, ref: str) -> str:
        return f"{self.boxes}/{urllib.parse.quote(ref, safe='')}"

    def _request(self, method: str, path: str, body: bytes | None, headers: dict, ok: tuple) -> tuple[int, bytes, dict]:
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=self._headers(headers))
        try:
            with urllib.request.urlopen(req, context=self.ssl, timeout=3600) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            data = e.read()
            if e.code in ok:
                return e.code, data, dict(e.headers)
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = None
            raise from_response(e.code, parsed, f"{method} {path}") from None
        except urllib.error.URLError as e:
            raise BoxliteError(f"the boxlite server at {self.base} cannot be reached: {e.reason}", "network_unavailable") from None

    async def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None, ok: tuple = ()) -> tuple[int, bytes, dict]:
        return await asyncio.to_thread(self._request, method, path, body, headers or {}, ok)

    async def json(self, method: str, path: str, payload=None, ok: tuple = ()):
        body = None if payload is None else json.dumps(payload).encode()
        status, data, _ = await self.request(method, path, body, {"Content-Type": "application/json"} if body else {}, ok)
        return status, (json.loads(data) if data else None)

    async def attach(self, box_id: str, exec_id: str):
        import websockets  # Debian's python3-websockets (10.4) or a newer one

        url = self.base.replace("http", "ws", 1) + f"{self.box(box_id)}/executions/{urllib.parse.quote(exec_id, safe='')}/attach"
        headers = self._headers()
        kw = {"max_size": 8 << 20, **({"ssl": self.ssl} if self.ssl else {})}
        try:
            return await websockets.connect(url, additional_headers=headers, **kw)
        except TypeError:  # websockets < 14 names it extra_headers
            return await websockets.connect(url, extra_headers=headers, **kw)
