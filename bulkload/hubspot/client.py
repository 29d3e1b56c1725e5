"""Speak HubSpot's HTTP protocol: batch upsert and property reads over one httpx transport.

One HubSpotClient is shared by every sender thread (the httpx transport is safe to
share between threads and pools its connections). This module turns each HTTP answer
into either a parsed UpsertResponse (a 200 or 207 body, judged by its content, never
by its status code) or one of the exceptions below, and translates every httpx
exception in one place (`_send`). It knows nothing of retries, the journal or the
pipeline: the sender decides what each exception means for a batch.

    BulkloadError
    ├── InputError               the base URL is plain http:// to a non-loopback host,
    │                            or the token cannot be sent in a header
    ├── AuthError                401 / 403: token refused or scopes missing (exit 77)
    └── HubSpotError
        ├── BatchRejected        whole-request 400 / 409 / other 4xx about the inputs
        ├── RateLimited          429, with policyName and Retry-After
        ├── TransientError       5xx (JSON, empty or HTML), 408, 423, 425, 477, timeouts,
        │                        connection errors, malformed or misshapen 2xx bodies
        └── RequestRejected      about the request, not the inputs: a non-unique
            │                    idProperty, 404 on the endpoint, 405/406/410/415
            └── UnexpectedResponse   3xx, or a request httpx itself refused

The token is held in one header and nowhere else; every message built from foreign
text (per-input errors included) passes through `_redact`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Generic, NamedTuple, Self, TypeVar
from urllib.parse import quote

import httpx
import orjson

from bulkload.config import is_loopback
from bulkload.errors import AuthError, InputError
from bulkload.hubspot.exceptions import (
    BatchRejected,
    RateLimited,
    RequestRejected,
    TransientError,
    UnexpectedResponse,
)
from bulkload.hubspot.linking import AssociateAnswer, ReadAnswer, associate_answer, read_answer
from bulkload.hubspot.paths import ApiPaths
from bulkload.hubspot.ratelimit import RateLimitInfo
from bulkload.hubspot.responses import (
    BATCH_WIDE_ERROR_TYPES,
    UpsertResponse,
    failures_from_error_body,
    read_upsert_answer,
)
from bulkload.models import FailedRow, UpsertInput, trace_id_of

__all__ = [
    "BatchRejected",
    "HubSpotClient",
    "RateLimitInfo",
    "RateLimited",
    "Reply",
    "RequestRejected",
    "TransientError",
    "UnexpectedResponse",
    "UpsertResponse",
    "parse_retry_after",
]

T = TypeVar("T")

_USER_AGENT = "bulkload/0.1 (+https://github.com/)"
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")
_HTML_TITLE = re.compile(r"<title>\s*(.*?)\s*</title>", re.IGNORECASE | re.DOTALL)

# Answers that say "try again later" rather than anything about the inputs.
_TRANSIENT_4XX = frozenset({408, 423, 425, 477})
# Answers about the request itself (wrong endpoint or method): bisecting cannot help.
_NOT_ABOUT_INPUTS = frozenset({404, 405, 406, 410, 415})


class Reply(NamedTuple, Generic[T]):
    """A read's value, with the answer's status and rate headers (for the limiter)."""

    value: T
    status: int
    rate: RateLimitInfo


OWNERS_PAGE = 500  # the owners API's largest page
MIN_SECRET = 8


class OwnersPage(NamedTuple):
    owners: list[dict[str, object]]
    after: str | None  # the next page's cursor; None: this was the last


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None if absent or garbage."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is garbage
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def _loads(content: bytes) -> object:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class HubSpotClient:
    """HubSpot's batch upsert and properties endpoints; thread-safe, one connection pool."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        max_connections: int = 16,
        property_types: Mapping[str, str] | None = None,
        paths: ApiPaths | None = None,
    ) -> None:
        self.paths = paths or ApiPaths("v3")
        try:
            url = httpx.URL(base_url)
        except (httpx.InvalidURL, ValueError) as exc:
            raise InputError(f"invalid HubSpot base URL {base_url!r}: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise InputError(f"the HubSpot base URL must be https://HOST, not {base_url!r}")
        if url.scheme == "http" and not is_loopback(url.host):
            raise InputError(
                f"refusing plain http:// to {url.host}: the token and call data would travel "
                "unencrypted; use https:// (http:// is allowed for loopback hosts only)"
            )
        # Checked here so that httpx never raises an error quoting the header value.
        if not _TOKEN_CHARS.fullmatch(token):
            raise InputError("the HubSpot token is empty or holds spaces or control characters")
        self._token = token
        # What messages are cleaned of: the token, when it is long enough to be one (a
        # HubSpot token is 40-odd characters; a test's "t" would be cut out of every word).
        self._secret = token if len(token) >= MIN_SECRET else ""
        self.base_url = str(url).rstrip("/")
        self._property_types: Mapping[str, str] | None = property_types
        # Requests go straight to the transport (httpx's seam): the Client layer's
        # per-request URL merging, cookie jar and redirect handling cost more than
        # the rest of a 100-input upsert, and bulkload needs none of them.
        self._transport: httpx.BaseTransport = transport or httpx.HTTPTransport(
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        )
        # No pool timeout: with more sender threads than connections a thread
        # waits its turn, which is not a HubSpot failure.
        self._timeout = httpx.Timeout(timeout, pool=None).as_dict()
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        self._urls: dict[str, httpx.URL] = {}

    def __repr__(self) -> str:
        return f"HubSpotClient(base_url={self.base_url!r})"

    # --- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- property types (for telling INVALID_LONG on a datetime from one on a number) ---

    @property
    def property_types(self) -> Mapping[str, str] | None:
        return self._property_types

    def set_property_types(self, property_types: Mapping[str, str] | None) -> None:
        # One reference swap: readers in other threads see the old or the new map.
        self._property_types = dict(property_types) if property_types is not None else None

    # --- endpoints -------------------------------------------------------------

    def upsert_batch(self, object_type: str, inputs: Sequence[UpsertInput]) -> UpsertResponse:
        """POST .../objects/{objectType}/batch/upsert; a 2xx body parsed, all else raised."""
        trace_ids = [trace_id_of(i) for i in inputs]
        if len(set(trace_ids)) != len(trace_ids):
            raise ValueError("every input of a batch needs its own objectWriteTraceId")
        path = self.paths.batch_upsert(object_type)
        content = orjson.dumps({"inputs": list(inputs)})
        response = self._send(
            "POST", path, content=content, headers={"Content-Type": "application/json"}
        )
        rate = RateLimitInfo.from_headers(response.headers)
        if response.status_code in (200, 201, 207):
            return self._parse_upsert(response, inputs, rate, trace_ids)
        self._raise_for_status(response, rate, inputs)
        raise TransientError(
            f"unexpected success status {response.status_code}", response.status_code, rate=rate
        )

    def batch_read(self, object_type: str, id_property: str, values: Sequence[str]) -> ReadAnswer:
        """POST .../objects/{objectType}/batch/read by `id_property`: which values have a record."""
        fold = id_property == "email"
        body: dict[str, object] = {"inputs": [{"id": v} for v in values], "properties": [id_property]}
        if id_property != "hs_object_id":
            body["idProperty"] = id_property
        response = self._send("POST", self.paths.batch_read(object_type), content=orjson.dumps(body),
                              headers={"Content-Type": "application/json"})
        rate = RateLimitInfo.from_headers(response.headers)
        if response.status_code not in (200, 207):
            self._raise_for_status(response, rate, None)
        answer = _loads(response.content)
        if not isinstance(answer, dict) or not isinstance(answer.get("results", []), list):
            raise TransientError(f"HTTP {response.status_code} body is not a batch read response",
                                 response.status_code, rate=rate)
        return read_answer(answer, values, id_property, fold=fold, http_status=response.status_code, rate=rate)

    def associate(self, from_type: str, to_type: str, pairs: Sequence[tuple[str, str]]) -> AssociateAnswer:
        """POST .../associations/{from}/{to}/batch/associate/default: HubSpot's default type.

        A whole-batch 4xx is a BatchRejected (the sender splits the pairs); a 404 or 405 is
        about the request (an unknown object pair) and stops the run.
        """
        body = {"inputs": [{"from": {"id": f}, "to": {"id": t}} for f, t in pairs]}
        response = self._send("POST", self.paths.associate_default(from_type, to_type), content=orjson.dumps(body),
                              headers={"Content-Type": "application/json"})
        rate = RateLimitInfo.from_headers(response.headers)
        status = response.status_code
        if status in (200, 201, 207):
            answer = _loads(response.content)
            if not isinstance(answer, dict):
                raise TransientError(f"HTTP {status} body is not a batch associate response", status, rate=rate)
            failures = associate_answer(answer, pairs, http_status=status, rate=rate)
            return replace(failures, failures={p: self._redacted(f) for p, f in failures.failures.items()})
        self._raise_for_status(response, rate, None, rejectable=True)
        raise TransientError(f"unexpected success status {status}", status, rate=rate)

    def list_properties(self, object_type: str) -> Reply[list[dict[str, object]]]:
        """GET .../properties/{objectType}: every property definition (no paging)."""
        response = self._send("GET", self.paths.properties(object_type))
        rate = RateLimitInfo.from_headers(response.headers)
        if response.status_code != 200:
            self._raise_for_status(response, rate, None)
        body = _loads(response.content)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise TransientError("the property list has no results[]", 200, rate=rate)
        return Reply([p for p in results if isinstance(p, dict)], response.status_code, rate)

    def list_owners(self, after: str | None = None, limit: int = OWNERS_PAGE) -> Reply[OwnersPage]:
        """GET .../owners: one page of the portal's active owners, and the cursor of the
        next page (None on the last)."""
        query = f"?limit={limit}" + (f"&after={quote(after, safe='')}" if after else "")
        response = self._send("GET", self.paths.owners() + query)
        rate = RateLimitInfo.from_headers(response.headers)
        if response.status_code != 200:
            self._raise_for_status(response, rate, None)
        body = _loads(response.content)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise TransientError("the owner list has no results[]", 200, rate=rate)
        paging = body.get("paging") if isinstance(body, dict) else None
        following = paging.get("next") if isinstance(paging, dict) else None
        cursor = following.get("after") if isinstance(following, dict) else None
        page = OwnersPage([o for o in results if isinstance(o, dict)], str(cursor) if cursor else None)
        return Reply(page, response.status_code, rate)

    # --- the one seam to httpx ------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; every httpx exception becomes a bulkload exception here."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self.base_url + path)
        request_headers = self._headers if headers is None else {**self._headers, **headers}
        request = httpx.Request(
            method, url, headers=request_headers, content=content, extensions={"timeout": self._timeout}
        )
        try:
            response = self._transport.handle_request(request)
            response.request = request
            try:
                response.read()
            finally:
                response.close()
            return response
        except httpx.TimeoutException as exc:
            reason = f"timed out ({type(exc).__name__})"
            raise TransientError(reason) from None
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.DecodingError) as exc:
            # The request may have been applied before the connection broke;
            # resending an upsert keyed by idProperty is harmless.
            raise TransientError(f"{type(exc).__name__}: {self._redact(str(exc))}") from None
        except httpx.HTTPError as exc:
            # LocalProtocolError, UnsupportedProtocol, ProxyError, TooManyRedirects:
            # our request or setup is wrong, so retrying would not help.
            raise UnexpectedResponse(
                f"HTTP request failed: {type(exc).__name__}: {self._redact(str(exc))}"
            ) from None

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "[token]") if self._secret else text

    # --- reading answers ----------------------------------------------------------------

    def _parse_upsert(
        self,
        response: httpx.Response,
        inputs: Sequence[UpsertInput],
        rate: RateLimitInfo,
        trace_ids: Sequence[str],
    ) -> UpsertResponse:
        status = response.status_code
        body = _loads(response.content)
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            # A 2xx we cannot read tells us nothing about the inputs: resend the batch.
            raise TransientError(f"HTTP {status} body is not a batch upsert response", status, rate=rate)
        return read_upsert_answer(
            body, inputs, trace_ids, http_status=status, rate=rate,
            correlation_id=response.headers.get("x-hubspot-correlation-id"),
            property_types=self._property_types, clean=self._redacted,
        )

    def _redacted(self, failure: FailedRow) -> FailedRow:
        """A per-input failure with the token taken out of every message it carries."""
        token = self._secret
        if not token or (token not in failure.message and not any(token in p.message for p in failure.problems)):
            return failure
        return replace(
            failure,
            message=self._redact(failure.message),
            problems=tuple(replace(p, message=self._redact(p.message)) for p in failure.problems),
        )

    def _raise_for_status(
        self,
        response: httpx.Response,
        rate: RateLimitInfo,
        inputs: Sequence[UpsertInput] | None,
        *,
        rejectable: bool = False,
    ) -> None:
        """Raise the exception for a non-2xx answer (`inputs` None: not an upsert batch;
        `rejectable`: a batch whose whole-request 4xx is split rather than stopped on)."""
        status = response.status_code
        body = _loads(response.content)
        error = body if isinstance(body, dict) else {}
        message = self._redact(_str(error.get("message")) or self._text_of(response))
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if status in (401, 403):
            category = _str(error.get("category"))
            detail = f" [{category}]" if category else ""
            raise AuthError(
                f"HubSpot refused the token (HTTP {status}){detail}: {message}", status=status
            )
        if status == 429:
            raise RateLimited(_str(error.get("policyName")), retry_after, rate, message)
        if status >= 500 or status in _TRANSIENT_4XX:
            raise TransientError(message, status, retry_after=retry_after, rate=rate)
        if rejectable and 400 <= status < 500 and status not in _NOT_ABOUT_INPUTS:
            failures, body_message, correlation_id = failures_from_error_body(
                status, body, [], correlation_id=response.headers.get("x-hubspot-correlation-id"),
                fallback_message=message)
            raise BatchRejected(status, [self._redacted(f) for f in failures], self._redact(body_message),
                                correlation_id=correlation_id, rate=rate)
        if status < 400 or status in _NOT_ABOUT_INPUTS or inputs is None:
            raise UnexpectedResponse(
                f"HubSpot answered HTTP {status} to {response.request.method} "
                f"{response.request.url.path}: {message}",
                status,
            )
        failures, body_message, correlation_id = failures_from_error_body(
            status,
            body,
            inputs,
            correlation_id=response.headers.get("x-hubspot-correlation-id"),
            property_types=self._property_types,
            fallback_message=message,
        )
        if any(f.error_type in BATCH_WIDE_ERROR_TYPES for f in failures):
            # The same answer awaits every batch: about the request, not an input.
            raise RequestRejected(
                f"HubSpot refused the request (HTTP {status}): {self._redact(body_message)}", status
            )
        raise BatchRejected(
            status, [self._redacted(f) for f in failures], self._redact(body_message),
            correlation_id=correlation_id, rate=rate,
        )

    @staticmethod
    def _text_of(response: httpx.Response) -> str:
        """A short message from a non-JSON body: an HTML <title> (Cloudflare pages), else text."""
        text = response.content[:4096].decode("utf-8", errors="replace").strip()
        if not text:
            return f"HTTP {response.status_code} with an empty body"
        match = _HTML_TITLE.search(text)
        if match:
            return match.group(1)
        return " ".join(text.split())[:200]
