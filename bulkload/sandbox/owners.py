"""The portal's owners (HubSpot users records can be assigned to): deterministic
seeding, `GET /crm/v3/owners` paging and filters, and the live set of valid owner
ids that every `hubspot_owner_id` rule checks against.

Owner i (1-based) has id `10_000_000 + 7919 * i` (the committed sample data uses
the first 25), e-mail `owner-{i:03d}@example.com`, and names from fixed lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bulkload.sandbox.wire import ApiError, api_error

MAX_LIMIT = 500  # the owners API's largest page
DEFAULT_LIMIT = 100

FIRST_NAMES = (
    "Ava", "Ben", "Chloe", "Daniel", "Emma", "Farid", "Grace", "Hiro", "Isla", "Jonas",
    "Keira", "Liam", "Maya", "Noah", "Olivia", "Pablo", "Quinn", "Rosa", "Sam", "Tara",
    "Umar", "Vera", "Wes", "Xenia", "Yusuf", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Anderson", "Brown", "Chen", "Dubois", "Evans", "Fischer", "Garcia", "Hughes", "Ito",
    "Jensen", "Kowalski", "Lopez", "Murphy", "Nakamura", "Okafor", "Patel", "Quintero",
    "Rossi", "Schmidt", "Tanaka", "Usman", "Varga", "Walsh", "Xu", "Young", "Zimmermann",
)  # fmt: skip
_TEAMS = (
    {"id": "4001", "name": "Sales", "primary": True},
    {"id": "4002", "name": "Support", "primary": True},
)


def owner_id(i: int) -> str:
    return str(10_000_000 + 7919 * i)


def owner_email(i: int) -> str:
    return f"owner-{i:03d}@example.com"


@dataclass(frozen=True, slots=True)
class Owner:
    id: str
    email: str
    first_name: str
    last_name: str
    user_id: int
    archived: bool
    team: int  # index into _TEAMS
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "type": "PERSON",
            "firstName": self.first_name,
            "lastName": self.last_name,
            "userId": self.user_id,
            "userIdIncludingInactive": self.user_id,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "archived": self.archived,
            "teams": [dict(_TEAMS[self.team])],
        }

    @staticmethod
    def from_json(body: dict[str, Any]) -> Owner:
        teams = body.get("teams") or [{}]
        team = next((i for i, t in enumerate(_TEAMS) if t["id"] == teams[0].get("id")), 0)
        return Owner(
            str(body["id"]),
            str(body["email"]),
            str(body.get("firstName", "")),
            str(body.get("lastName", "")),
            int(body.get("userId", 0)),
            bool(body.get("archived")),
            team,
            str(body.get("createdAt", "2021-01-01T09:00:00.000Z")),
            str(body.get("updatedAt", "2021-01-01T09:00:00.000Z")),
        )


def seeded_owner(i: int, *, archived: bool = False) -> Owner:
    stamp = f"2021-{1 + (i - 1) // 28 % 12:02d}-{1 + (i - 1) % 28:02d}T09:00:00.000Z"
    return Owner(
        owner_id(i),
        owner_email(i),
        FIRST_NAMES[(i - 1) % len(FIRST_NAMES)],
        LAST_NAMES[(i - 1) * 7 % len(LAST_NAMES)],
        9_000_000 + i,
        archived,
        (i - 1) % len(_TEAMS),
        stamp,
        stamp,
    )


class OwnerDirectory:
    """Every owner by id, in id order, and the set of ids a record may be assigned to.

    `active_ids` is mutated in place, never replaced: the compiled owner rules of
    every object hold a reference to it.
    """

    def __init__(self) -> None:
        self.owners: dict[str, Owner] = {}
        self.active_ids: set[str] = set()
        self.seeded = 0  # owners 1..seeded follow the seeding formula
        self._ordered: list[Owner] | None = None

    def add(self, owner: Owner) -> bool:
        """Add (or replace) an owner; True if it was not known."""
        new = owner.id not in self.owners
        self.owners[owner.id] = owner
        if owner.archived:
            self.active_ids.discard(owner.id)
        else:
            self.active_ids.add(owner.id)
        self._ordered = None
        return new

    def remove(self, owner_id: str) -> None:
        self.owners.pop(owner_id, None)
        self.active_ids.discard(owner_id)
        self._ordered = None

    def seed(self, active: int, archived: int = 0) -> tuple[list[Owner], list[str]]:
        """Make owners 1..active (non-archived) and active+1..active+archived (archived)
        the seeded ones, dropping seeded owners beyond them. Returns (owners added or
        changed, ids removed), for the store."""
        changed: list[Owner] = []
        removed: list[str] = []
        total = active + archived
        for i in range(1, max(total, self.seeded) + 1):
            if i > total:
                if owner_id(i) in self.owners:
                    self.remove(owner_id(i))
                    removed.append(owner_id(i))
                continue
            owner = seeded_owner(i, archived=i > active)
            if self.owners.get(owner.id) != owner:
                self.add(owner)
                changed.append(owner)
        self.seeded = total
        return changed, removed

    def ordered(self) -> list[Owner]:
        if self._ordered is None:
            self._ordered = sorted(self.owners.values(), key=lambda o: int(o.id))
        return self._ordered

    def get(self, owner_id: str, archived: bool = False) -> Owner | None:
        owner = self.owners.get(owner_id)
        if owner is None or owner.archived != archived:
            return None
        return owner

    def page(self, query: dict[str, list[str]], base_url: str) -> dict[str, Any]:
        """The body of `GET /crm/v3/owners?email=&after=&limit=&archived=`."""
        limit = _int_param(query, "limit", DEFAULT_LIMIT)
        if not 1 <= limit <= MAX_LIMIT:
            raise api_error(
                400,
                f"limit must be between 1 and {MAX_LIMIT}, not {limit}",
                "VALIDATION_ERROR",
            )
        after = _int_param(query, "after", 0)
        if after < 0:
            raise _bad_param("after", str(after))
        archived = _bool_param(query, "archived")
        emails = query.get("email")
        email = emails[0] if emails else None
        owners = [o for o in self.ordered() if o.archived == archived]
        if email:
            wanted = email.lower()
            owners = [o for o in owners if o.email.lower() == wanted]
        chunk = owners[after : after + limit]
        body: dict[str, Any] = {"results": [o.to_json() for o in chunk]}
        if after + limit < len(owners):
            nxt = str(after + limit)
            extra = f"&email={email}" if email else ""
            extra += "&archived=true" if archived else ""
            body["paging"] = {
                "next": {"after": nxt, "link": f"{base_url}?limit={limit}&after={nxt}{extra}"}
            }
        return body


def _int_param(query: dict[str, list[str]], name: str, default: int) -> int:
    values = query.get(name)
    if not values:
        return default
    try:
        return int(values[0])
    except ValueError:
        raise _bad_param(name, values[0]) from None


def _bool_param(query: dict[str, list[str]], name: str) -> bool:
    values = query.get(name)
    if not values:
        return False
    text = values[0].lower()
    if text not in ("true", "false"):
        raise _bad_param(name, values[0])
    return text == "true"


def _bad_param(name: str, value: str) -> ApiError:
    return api_error(
        400, f"Unable to process query parameter {name}: {value!r} is not valid", "VALIDATION_ERROR"
    )
