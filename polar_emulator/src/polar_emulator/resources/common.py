"""Pieces shared by the resource modules: request-body types, metadata, sorting, lookups and
the :class:`Resource` scaffolding (router, scopes, get, write preamble and list).

Query-string errors are 422s shaped like FastAPI's (``loc`` ``["query", name, ...]``), as Polar's are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from starlette.requests import Request

from polar_emulator.auth import (
    AuthSubject,
    authenticate,
    get_store,
    list_organization_ids,
    payload_organization,
    reachable_or_404,
)
from polar_emulator.domain.store import Store
from polar_emulator.errors import ApiError, validation_item
from polar_emulator.pagination import paginate

# -- request-body types ------------------------------------------------------------------

MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=40)]
MetadataValue = Annotated[str, StringConstraints(min_length=1, max_length=500)] | int | float | bool
# Polar's MetadataInputMixin: at most 50 keys, keys 1-40 chars, string values 1-500 chars.
Metadata = Annotated[dict[MetadataKey, MetadataValue], Field(max_length=50)]

TaxBehavior = Literal["location", "inclusive", "exclusive"]
Interval = Literal["day", "week", "month", "year"]

# The currencies Polar accepts (ISO 4217, lower case).
Currency = Literal[
    "aed",
    "all",
    "amd",
    "aoa",
    "ars",
    "aud",
    "awg",
    "azn",
    "bam",
    "bbd",
    "bdt",
    "bif",
    "bmd",
    "bnd",
    "bob",
    "brl",
    "bsd",
    "bwp",
    "bzd",
    "cad",
    "cdf",
    "chf",
    "clp",
    "cny",
    "cop",
    "crc",
    "cve",
    "czk",
    "djf",
    "dkk",
    "dop",
    "dzd",
    "egp",
    "etb",
    "eur",
    "fjd",
    "fkp",
    "gbp",
    "gel",
    "gip",
    "gmd",
    "gnf",
    "gtq",
    "gyd",
    "hkd",
    "hnl",
    "htg",
    "huf",
    "idr",
    "ils",
    "inr",
    "isk",
    "jmd",
    "jpy",
    "kes",
    "kgs",
    "khr",
    "kmf",
    "krw",
    "kyd",
    "kzt",
    "lak",
    "lkr",
    "lrd",
    "lsl",
    "mad",
    "mdl",
    "mga",
    "mkd",
    "mnt",
    "mop",
    "mur",
    "mvr",
    "mwk",
    "mxn",
    "myr",
    "mzn",
    "nad",
    "ngn",
    "nio",
    "nok",
    "npr",
    "nzd",
    "pab",
    "pen",
    "pgk",
    "php",
    "pkr",
    "pln",
    "pyg",
    "qar",
    "ron",
    "rsd",
    "rwf",
    "sar",
    "sbd",
    "scr",
    "sek",
    "sgd",
    "shp",
    "sos",
    "srd",
    "szl",
    "thb",
    "tjs",
    "top",
    "try",
    "ttd",
    "twd",
    "tzs",
    "uah",
    "ugx",
    "usd",
    "uyu",
    "uzs",
    "vnd",
    "vuv",
    "wst",
    "xaf",
    "xcd",
    "xcg",
    "xof",
    "xpf",
    "yer",
    "zar",
    "zmw",
]


class Body(BaseModel):
    """Base of request bodies: unknown fields are ignored, as Polar's schemas do."""

    model_config = ConfigDict(extra="ignore")


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _check_email(value: str) -> str:
    if "@" not in value:
        raise ValueError("value is not a valid email address: An email address must have an @-sign.")
    if not _EMAIL.match(value):
        raise ValueError("value is not a valid email address: The part after the @-sign is not valid.")
    return value


Email = Annotated[str, AfterValidator(_check_email)]
# Customers and checkouts: the same limits, without the minimum lengths.
LooseMetadataValue = Annotated[str, Field(max_length=500)] | int | float | bool
LooseMetadata = Annotated[
    dict[Annotated[str, Field(max_length=40)], LooseMetadataValue], Field(max_length=50)
]


class AddressInput(BaseModel):
    """Polar's ``AddressInput``; ``country`` is an ISO 3166-1 alpha-2 code."""

    line1: str | None = None
    line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    state: str | None = None
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]


# -- query parameters ----------------------------------------------------------------------

_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n"}


def _invalid(*items: dict) -> ApiError:
    return ApiError(422, {"error": "RequestValidationError", "detail": list(items)})


def query_bool(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise _invalid(
        validation_item(
            ["query", name], "Input should be a valid boolean, unable to interpret input", "bool_parsing", raw
        )
    )


def query_list(request: Request, name: str, allowed: Iterable[str] | None = None) -> list[str]:
    """A repeatable query parameter; with ``allowed``, values outside it are a 422 ``enum``."""
    values = request.query_params.getlist(name)
    if allowed is not None:
        allowed = list(allowed)
        expected = ", ".join(f"'{a}'" for a in allowed)
        bad = [
            validation_item(["query", name, i], f"Input should be {expected}", "enum", v)
            for i, v in enumerate(values)
            if v not in allowed
        ]
        if bad:
            raise _invalid(*bad)
    return values


def query_datetime(request: Request, name: str) -> datetime | None:
    """A date-time query parameter (naive means UTC); unparsable is a 422 as FastAPI's."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = _DATETIME.validate_python(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise _invalid(validation_item(["query", name], err["msg"], err["type"], raw)) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)


# -- list helpers --------------------------------------------------------------------------


def metadata_query(request: Request) -> dict[str, list[str]]:
    """``metadata[key]=value`` query parameters (deepObject): key -> accepted values."""
    wanted: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        if key.startswith("metadata[") and key.endswith("]") and len(key) > len("metadata[]"):
            wanted.setdefault(key[len("metadata[") : -1], []).append(value)
    return wanted


def _as_text(value: Any) -> str:
    # Postgres ``jsonb ->> key`` renders booleans as true/false.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def metadata_matches(metadata: dict[str, Any], wanted: dict[str, list[str]]) -> bool:
    """Different keys AND, values of one key OR; compared as text."""
    for key, values in wanted.items():
        if key not in metadata or _as_text(metadata[key]) not in values:
            return False
    return True


def sort_items(
    request: Request,
    items: list[dict[str, Any]],
    allowed: Iterable[str],
    keys: dict[str, Callable[[dict[str, Any]], Any]] | None = None,
) -> list[dict[str, Any]]:
    """Apply the repeatable ``sorting`` parameter (default ``-created_at``); unknown values are a 422.

    ``keys`` computes sort values for properties that are not plain fields of the items.
    """
    keys = keys or {}
    allowed = set(allowed)
    criteria = request.query_params.getlist("sorting") or ["-created_at"]
    for index, criterion in enumerate(criteria):
        if criterion.lstrip("-") not in allowed:
            raise _invalid(
                validation_item(
                    ["query", "sorting", index],
                    f"Input should be {', '.join(repr(a) for a in sorted(allowed))}",
                    "enum",
                    criterion,
                )
            )
    result = list(items)
    # Stable sorts applied from the last criterion to the first.
    for criterion in reversed(criteria):
        field = criterion.lstrip("-")
        get = keys.get(field) or _plain_field(field)
        result.sort(key=_sort_key_by(get), reverse=criterion.startswith("-"))
    return result


def _plain_field(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda item: item.get(name)


def _sort_key_by(get: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], tuple[int, Any]]:
    return lambda item: _sort_key(get(item))


def sort_by_keys(
    request: Request,
    items: Sequence[dict[str, Any]],
    keys: Mapping[str, Callable[[dict[str, Any]], Any]],
    default: Sequence[str] = ("-created_at",),
) -> list[dict[str, Any]]:
    """Apply ``?sorting=`` criteria in order (``-field`` is descending) over computed ``keys``.

    Unlike :func:`sort_items`, every unknown criterion is reported (as ``'field', '-field'``
    choices), values compare as they are, and items without a value sort last either way.
    """
    allowed = [p for k in keys for p in (k, f"-{k}")]
    criteria = query_list(request, "sorting", allowed) or list(default)
    result = list(items)
    # Stable sorts applied from the last criterion to the first give a multi-key sort.
    for criterion in reversed(criteria):
        field = criterion.lstrip("-")
        key = keys[field]
        present = [i for i in result if key(i) is not None]
        missing = [i for i in result if key(i) is None]
        present.sort(key=key, reverse=criterion.startswith("-"))
        result = present + missing
    return result


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, str):
        return (1, value.lower())
    return (1, value)


def text_contains(haystack: str | None, needle: str | None) -> bool:
    """Polar's ``ilike '%query%'``."""
    return needle is None or (haystack is not None and needle.lower() in haystack.lower())


# -- resource scaffolding ------------------------------------------------------------------

Record = dict[str, Any]


class Resource:
    """The scaffolding shared by the routes of one organization-owned collection.

    A resource module states what differs: its collection ``name`` (also the scope and the
    default ``/v1/{name}`` prefix), the ``manage`` permission and action that guard writes, the
    ``sortable`` fields, the ``scope`` when it is not the name, ``read_scopes`` when reading takes
    other scopes than ``{scope}:read`` or ``{scope}:write`` (as the spec's security requirements
    say) and, when not a plain collection read, the ``lookup`` of one record.
    With ``private``, reading also needs ``manage``: lists skip organizations without it and a
    get is refused.
    """

    def __init__(
        self,
        name: str,
        *,
        prefix: str | None = None,
        tag: str | None = None,
        scope: str | None = None,
        manage: tuple[str, str] | None = None,
        sortable: Iterable[str] = ("created_at",),
        lookup: Callable[[Store, str | UUID], Record | None] | None = None,
        private: bool = False,
        read_scopes: tuple[str, ...] | None = None,
    ) -> None:
        self.name = name
        scope = scope or name
        self.read = read_scopes or (f"{scope}:read", f"{scope}:write")
        self.write = (f"{scope}:write",)
        self.router = APIRouter(prefix=prefix or f"/v1/{name}", tags=[tag or name])
        self.manage = manage
        self.sortable = tuple(sortable)
        self.private = private
        self._lookup = lookup

    def records(self, store: Store) -> dict[str, Record]:
        return store.collections[self.name]

    def lookup(self, store: Store, id: str | UUID) -> Record | None:
        if self._lookup is not None:
            return self._lookup(store, id)
        return self.records(store).get(str(id))

    def require(self, subject: AuthSubject, organization_id: str) -> None:
        if self.manage is not None:
            subject.require(organization_id, *self.manage)

    def get(self, request: Request, subject: AuthSubject, id: str | UUID) -> Record:
        """The record the subject reaches (else a 404); with ``private``, ``manage`` is required."""
        record = reachable_or_404(request, subject, self.lookup(get_store(request), id))
        if self.private:
            self.require(subject, record["organization_id"])
        return record

    def read_one(self, request: Request, id: str | UUID) -> Record:
        """``GET /{id}``: authenticate for reading and look the record up."""
        return self.get(request, authenticate(request, self.read), id)

    def for_write(self, request: Request, id: str | UUID) -> tuple[AuthSubject, Record]:
        """Authenticate for writing, look the record up and require ``manage`` on its organization."""
        subject = authenticate(request, self.write)
        record = self.get(request, subject, id)
        if not self.private:  # a private get has required it already
            self.require(subject, record["organization_id"])
        return subject, record

    def new_owner(self, request: Request, organization_id: UUID | None) -> tuple[AuthSubject, str]:
        """Authenticate a create, resolve the body's ``organization_id`` and require ``manage`` there."""
        subject = authenticate(request, self.write)
        owner = payload_organization(request, subject, str(organization_id) if organization_id else None)
        self.require(subject, owner)
        return subject, owner

    def list_records(
        self,
        request: Request,
        keep: Callable[[Record], bool] = lambda record: True,
        *,
        metadata: bool = True,
        serialize: Callable[[Store, Record], Record] | None = None,
        keys: dict[str, Callable[[Record], Any]] | None = None,
    ) -> dict:
        """``GET /``: the reachable records ``keep`` accepts (and, with ``metadata``, that match the
        ``metadata[key]`` filters), serialized, sorted by ``?sorting=`` and paginated."""
        subject = authenticate(request, self.read)
        store = get_store(request)
        orgs = list_organization_ids(request, subject)
        if self.private:
            # Organizations where the role lacks the permission are filtered out, not refused.
            orgs = {oid for oid in orgs if self.manage is None or subject.can(oid, self.manage[0])}
        wanted = metadata_query(request) if metadata else {}
        items = [
            r
            for r in self.records(store).values()
            if r["organization_id"] in orgs
            and keep(r)
            and (not metadata or metadata_matches(r["metadata"], wanted))
        ]
        if serialize is not None:
            items = [serialize(store, r) for r in items]
        return paginate(request, sort_items(request, items, self.sortable, keys))

    def list_by_keys(
        self, request: Request, select: Callable[[Request, Store, list[Record]], list[Record]]
    ) -> dict:
        """``GET /`` sorted by :func:`sort_by_keys` over the ``sortable`` fields: ``select`` filters
        (and serializes) the records of the reachable organizations, which are then sorted and paginated."""
        subject = authenticate(request, self.read)
        store = get_store(request)
        orgs = list_organization_ids(request, subject)
        items = select(
            request, store, [r for r in self.records(store).values() if r["organization_id"] in orgs]
        )
        keys = {field: itemgetter(field) for field in self.sortable}
        return paginate(request, sort_by_keys(request, items, keys))
