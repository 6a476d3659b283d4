"""Who is calling: the API key of a request (`Authorization: Bearer pf_...`), its scope, and its rate limit.

Auth is on unless the server was started with `--no-auth`; a server bound to loopback where no key was ever
created also serves without keys (a local trial), and asks for keys as soon as one exists. Revoking every key
does not reopen it: revoked keys count.
"""

from __future__ import annotations

import time

from fastapi import Request

from pilotfish.serve.keys import ApiKey
from pilotfish.serve.service import RequestError, Service

_KEY_COUNT_SECONDS = 5.0  # how long the number of live keys is trusted before it is read again


class Access:
    def __init__(self, service: Service) -> None:
        self.service = service
        self._keys_seen = (-1.0, 0)  # (when read, how many live keys)

    def keys_exist(self) -> bool:
        """Was any key ever created (read at most every few seconds)?"""
        when, count = self._keys_seen
        if time.monotonic() - when > _KEY_COUNT_SECONDS:
            count = len(self.service.keys.list())  # revoked ones too: revoking the last key must not open the door
            self._keys_seen = (time.monotonic(), count)
        return count > 0

    def required(self) -> bool:
        config = self.service.config
        return config.auth and (not config.loopback or self.keys_exist())

    def caller(self, request: Request, *, admin: bool = False) -> ApiKey | None:
        """The request's key (None when auth is off), after the key and rate checks; raises `RequestError`."""
        key = None
        if self.required():
            header = request.headers.get("authorization", "")
            token = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
            if not token:
                self.service.metrics.rejected.labels("auth").inc()
                raise RequestError(401, "missing API key: send the header 'Authorization: Bearer pf_...' "
                                        "(create one with `pilotfish keys create --name NAME`)",
                                   kind="authentication_error", code="missing_api_key")
            key = self.service.keys.verify(token)
            if key is None:
                self.service.metrics.rejected.labels("auth").inc()
                raise RequestError(401, "invalid or revoked API key: check it, or create another with "
                                        "`pilotfish keys create`", kind="authentication_error",
                                   code="invalid_api_key")
        if admin and key is not None and not key.admin:
            raise RequestError(403, f"key {key.name!r} has the 'ask' scope; uploading documents needs an admin key "
                                    "(`pilotfish keys create --scope admin`)", kind="permission_error",
                               code="admin_required")
        caller = f"key:{key.id}" if key is not None else f"addr:{request.client.host if request.client else '-'}"
        wait = self.service.limiter.take(caller)
        if wait > 0:
            self.service.metrics.rejected.labels("rate").inc()
            raise RequestError(429, f"rate limit: at most {self.service.config.rate_per_minute} requests a minute "
                                    f"for this key; retry in {wait:.0f} s", kind="rate_limit_error",
                               code="rate_limit_exceeded", headers={"Retry-After": str(max(1, round(wait)))})
        return key
