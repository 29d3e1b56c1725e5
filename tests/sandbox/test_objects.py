"""Every CRM object: upserts in both path families under every name, default
properties, required properties, contacts by e-mail, the custom object."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bulkload.sandbox import SandboxServer

from .helpers import DATED, V3, batch, client_for, record, upsert_path

STAMP = "2024-05-01T10:00:00.000Z"

# object name -> (other names, unique property, properties a create needs and some typed ones)
OBJECTS: dict[str, tuple[tuple[str, ...], str, dict[str, str]]] = {
    "calls": (("call", "0-48"), "external_call_id", {"hs_timestamp": STAMP, "hs_call_status": "COMPLETED"}),
    "contacts": (("contact", "0-1"), "external_contact_id", {"email": "a@example.com", "lifecyclestage": "lead"}),
    "companies": (("company", "0-2"), "external_company_id", {"name": "Acme", "is_public": "true"}),
    "deals": (
        ("deal", "0-3"),
        "external_deal_id",
        {"dealname": "Renewal", "dealstage": "closedwon", "pipeline": "default", "amount": "1200.50"},
    ),
    "tickets": (
        ("ticket", "0-5"),
        "external_ticket_id",
        {"subject": "Broken", "hs_pipeline": "0", "hs_pipeline_stage": "1",
         "hs_ticket_category": "PRODUCT_ISSUE;BILLING_ISSUE"},
    ),
    "emails": (
        ("email", "0-49"),
        "external_email_id",
        {"hs_timestamp": STAMP, "hs_email_direction": "EMAIL", "hs_email_status": "SENT"},
    ),
    "meetings": (("meeting", "0-47"), "external_meeting_id", {"hs_timestamp": STAMP, "hs_meeting_outcome": "COMPLETED"}),
    "notes": (("note", "0-46"), "external_note_id", {"hs_timestamp": STAMP, "hs_note_body": "Called back"}),
    "tasks": (
        ("task", "0-27"),
        "external_task_id",
        {"hs_timestamp": STAMP, "hs_task_status": "NOT_STARTED", "hs_task_priority": "HIGH", "hs_task_type": "CALL"},
    ),
    "p_machines": (
        ("p_machine", "2-123456", "p21458763_machines"),
        "serial_number",
        {"machine_name": "Lathe", "purchase_date": "2024-03-01", "is_leased": "true", "running_hours": "12.5"},
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(OBJECTS))
def test_every_object_upserts_in_both_families_under_every_name(
    sandbox: SandboxServer, client: httpx.Client, name: str
) -> None:
    aliases, unique, props = OBJECTS[name]
    keys = []
    for n, (alias, family) in enumerate((a, f) for a in (name, *aliases) for f in (V3, DATED)):
        key = f"{alias}-{n}"
        keys.append(key)
        item = record(key, unique, f"t-{n}", **props)
        if name == "contacts":  # e-mails are unique per contact
            item["properties"]["email"] = f"c{n}@example.com"
        response = client.post(upsert_path(alias, family), json=batch(item))
        assert response.status_code == 200, (alias, family, response.text)
        result = response.json()["results"][0]
        assert result["new"] is True
        assert result["objectWriteTraceId"] == f"t-{n}"
        assert result["properties"][unique] == key
        assert result["properties"]["hs_object_id"] == result["id"]
    stored = sandbox.store_records(object_type=name)
    assert set(stored) == set(keys)
    # The same record again, through another name and family: an update.
    again = client.post(
        upsert_path(aliases[-1], DATED), json=batch(record(keys[0], unique, "u", **{}))
    )
    assert again.json()["results"][0]["new"] is False
    assert sandbox.counters()["writes_by_object"][name] == {
        "created": len(keys),
        "updated": 1,
        "failed": 0,
    }


@pytest.mark.parametrize(
    ("name", "props", "missing"),
    [
        ("calls", {"hs_call_title": "x"}, ["hs_timestamp"]),
        ("emails", {"hs_email_subject": "x"}, ["hs_timestamp"]),
        ("meetings", {"hs_meeting_title": "x"}, ["hs_timestamp"]),
        ("notes", {"hs_note_body": "x"}, ["hs_timestamp"]),
        ("tasks", {"hs_task_subject": "x"}, ["hs_timestamp"]),
        ("contacts", {"phone": "+1 617 555 0100"}, ["email", "firstname", "lastname"]),
        ("companies", {"city": "Boston"}, ["name", "domain"]),
        ("deals", {"dealname": "x"}, ["dealstage", "pipeline"]),
        ("tickets", {"subject": "x", "hs_pipeline": "0"}, ["hs_pipeline_stage"]),
        ("p_machines", {"running_hours": "3"}, ["machine_name"]),
    ],
)
def test_required_properties_on_create(
    client: httpx.Client, name: str, props: dict[str, str], missing: list[str]
) -> None:
    _, unique, _ = OBJECTS[name]
    response = client.post(upsert_path(name), json=batch(record("k-1", unique, **props)))
    assert response.status_code == 400, response.text
    body = response.json()
    label = {"p_machines": "2-123456"}.get(name, name.removesuffix("s").upper())
    if name == "companies":
        label = "COMPANY"
    assert body["message"] == f"Error creating {label}.  Some required properties were not set."
    assert body["context"] == {"properties": missing}


def test_one_of_the_contact_names_is_enough(client: httpx.Client) -> None:
    response = client.post(
        upsert_path("contacts"), json=batch(record("k", "external_contact_id", firstname="Ada"))
    )
    assert response.status_code == 200


@pytest.mark.parametrize("family", ["/crm/v3/properties", "/crm/properties/2026-03"])
@pytest.mark.parametrize("name", list(OBJECTS))
def test_every_object_has_its_properties_in_both_families(
    client: httpx.Client, family: str, name: str
) -> None:
    aliases, unique, props = OBJECTS[name]
    response = client.get(f"{family}/{aliases[-1]}")
    assert response.status_code == 200
    by_name = {p["name"]: p for p in response.json()["results"]}
    assert by_name[unique]["hasUniqueValue"] is True
    assert set(props) <= set(by_name)
    assert by_name["hs_object_id"]["modificationMetadata"]["readOnlyValue"] is True
    owner = by_name["hubspot_owner_id"]
    assert (owner["type"], owner["referencedObjectType"], owner["externalOptions"]) == (
        "enumeration",
        "OWNER",
        True,
    )
    for prop in by_name.values():
        if prop["type"] == "enumeration" and prop["options"] and name != "p_machines":
            # HubSpot's option labels are not its values.
            assert any(o["label"] != o["value"] for o in prop["options"]), prop["name"]
    one = client.get(f"{family}/{name}/{unique}")
    assert one.status_code == 200 and one.json()["name"] == unique


def test_labels_distinct_from_values_as_hubspot_has_them(client: httpx.Client) -> None:
    def options(obj: str, prop: str) -> dict[str, str]:
        body = client.get(f"/crm/v3/properties/{obj}/{prop}").json()
        return {o["value"]: o["label"] for o in body["options"]}

    assert options("calls", "hs_call_status")["COMPLETED"] == "Completed"
    assert options("calls", "hs_call_disposition")["f240bbac-87c9-4f6e-bf70-924b57d47db7"] == (
        "Connected"
    )
    assert options("contacts", "lifecyclestage")["lead"] == "Lead"
    assert options("deals", "dealstage")["closedwon"] == "Closed Won"
    assert options("deals", "pipeline")["default"] == "Sales Pipeline"
    assert options("tickets", "hs_pipeline_stage")["4"] == "Closed"
    assert options("tickets", "hs_pipeline")["0"] == "Support Pipeline"
    assert options("tasks", "hs_task_status")["NOT_STARTED"] == "Not started"
    assert options("tasks", "hs_task_priority")["HIGH"] == "High"
    assert options("tasks", "hs_task_type")["TODO"] == "To-do"
    assert options("meetings", "hs_meeting_outcome")["NO_SHOW"] == "No show"
    assert options("emails", "hs_email_direction")["INCOMING_EMAIL"] == "Reply from a contact"
    assert options("emails", "hs_email_status")["BOUNCED"] == "Bounced"


def test_bool_date_and_checkbox_properties_exist_and_are_checked(client: httpx.Client) -> None:
    def prop(obj: str, name: str) -> dict[str, Any]:
        return dict(client.get(f"/crm/v3/properties/{obj}/{name}").json())

    assert prop("companies", "is_public")["type"] == "bool"
    assert prop("p_machines", "purchase_date")["type"] == "date"
    buying = prop("contacts", "hs_buying_role")
    assert (buying["type"], buying["fieldType"]) == ("enumeration", "checkbox")

    def refused(obj: str, unique: str, **props: str) -> dict[str, Any]:
        item = record("x", unique, **props)
        response = client.post(upsert_path(obj), json=batch(item))
        assert response.status_code == 400, response.text
        detail: dict[str, Any] = response.json()["errors"][0]
        return detail

    assert refused("companies", "external_company_id", name="A", is_public="yes")["code"] == (
        "INVALID_OPTION"
    )
    date = refused("p_machines", "serial_number", machine_name="M", purchase_date="1709287200000")
    assert (date["code"], date["message"]) == (
        "INVALID_DATE",
        "1709287200000 is at 10:00:00.000 UTC, not midnight!",
    )
    multi = refused(
        "contacts", "external_contact_id", firstname="A", hs_buying_role="CHAMPION;BOSS"
    )
    assert multi["code"] == "INVALID_OPTION"
    assert multi["message"].startswith("BOSS was not one of the allowed options: [BLOCKER")
    read_only = refused("contacts", "external_contact_id", firstname="A", createdate=STAMP)
    assert read_only["code"] == "READ_ONLY_VALUE"


def test_a_date_property_stores_the_day(client: httpx.Client) -> None:
    item = record("M-1", "serial_number", machine_name="M", purchase_date="1709251200000")
    response = client.post(upsert_path("p_machines"), json=batch(item))
    assert response.status_code == 200
    assert response.json()["results"][0]["properties"]["purchase_date"] == "2024-03-01"


# --- contacts by e-mail


def test_contacts_upsert_by_email_case_insensitively(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    props = client.get("/crm/v3/properties/contacts/email").json()
    assert props["hasUniqueValue"] is False  # as in HubSpot; the upsert still takes it
    first = client.post(
        upsert_path("contacts"),
        json=batch(record("Jane.Doe@Example.com", "email", firstname="Jane")),
    ).json()["results"][0]
    assert first["new"] is True
    assert first["properties"]["email"] == "jane.doe@example.com"  # stored lower-cased
    second = client.post(
        upsert_path("contact", DATED),
        json=batch(record("JANE.DOE@example.COM", "email", lastname="Doe")),
    ).json()["results"][0]
    assert second["new"] is False and second["id"] == first["id"]
    assert sandbox.store_records(object_type="contacts") == {
        "jane.doe@example.com": {**second["properties"], "firstname": "Jane"}
    }


def test_an_invalid_email_is_invalid_email(client: httpx.Client) -> None:
    item = record("c-1", "external_contact_id", "t1", email="name@domain.x")
    response = client.post(
        upsert_path("contacts"),
        json=batch(item, record("c-2", "external_contact_id", "t2", firstname="B")),
    )
    assert response.status_code == 207
    (error,) = response.json()["errors"]
    assert error["errors"] == [
        {
            "message": "Email address name@domain.x is invalid",
            "code": "INVALID_EMAIL",
            "context": {"propertyName": ["email"]},
        }
    ]
    embedded = json.loads(error["message"].removeprefix("Property values were not valid: "))
    assert embedded[0]["error"] == "INVALID_EMAIL"


def test_upsert_by_email_is_never_partial(sandbox: SandboxServer, client: httpx.Client) -> None:
    # DOC-objects: "Partial upserts are not supported when using email as the idProperty".
    good = record("ok@example.com", "email", "t1", firstname="Ok")
    bad = record("not-an-address", "email", "t2", firstname="Bad")
    response = client.post(upsert_path("contacts"), json=batch(good, bad))
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "INVALID_EMAIL"
    assert sandbox.store_records(object_type="contacts") == {}


def test_email_case_variants_in_one_batch_are_duplicates(client: httpx.Client) -> None:
    response = client.post(
        upsert_path("contacts"),
        json=batch(record("a@example.com", "email"), record("A@EXAMPLE.COM", "email")),
    )
    assert response.status_code == 400
    assert response.json()["message"] == (
        "Duplicate IDs found in batch input: [A@EXAMPLE.COM]. IDs must be unique"
    )


def test_an_email_held_by_another_contact_is_a_conflict(client: httpx.Client) -> None:
    first = client.post(
        upsert_path("contacts"),
        json=batch(record("c-1", "external_contact_id", email="x@example.com")),
    ).json()["results"][0]
    response = client.post(
        upsert_path("contacts"),
        json=batch(record("c-2", "external_contact_id", "t", email="X@Example.com")),
    )
    assert response.status_code == 207
    (error,) = response.json()["errors"]
    assert error["category"] == "CONFLICT"
    assert error["message"] == f"Contact already exists. Existing ID: {first['id']}"


def test_other_objects_cannot_upsert_by_a_non_unique_property(client: httpx.Client) -> None:
    response = client.post(
        upsert_path("companies"), json=batch(record("Acme", "name", name="Acme"))
    )
    assert response.status_code == 400
    assert response.json()["message"] == (
        "Unable to perform update/upsert by non-unique 0-2 property name"
    )


# --- names


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/crm/v3/objects/widgets/batch/upsert", "widgets"),
        ("/crm/objects/2026-03/widgets/batch/upsert", "widgets"),
        ("/crm/v3/objects/widgets/batch/read", "widgets"),
        ("/crm/objects/2026-03/Contacts/batch/read", "Contacts"),  # names are exact
        ("/crm/v3/objects/machines/batch/upsert", "machines"),  # custom base names: gone (2025)
        ("/crm/v4/associations/calls/widgets/batch/associate/default", "widgets"),
        ("/crm/associations/2026-03/widgets/contacts/batch/create", "widgets"),
    ],
)
def test_unknown_object_types_are_404(client: httpx.Client, path: str, name: str) -> None:
    response = client.post(path, json=batch())
    assert response.status_code == 404
    assert response.json()["message"] == f"Unable to infer object type from: {name}"
    assert response.json()["category"] == "OBJECT_NOT_FOUND"


@pytest.mark.parametrize("path", ["/crm/v3/properties/widgets", "/crm/properties/2026-03/0-99"])
def test_unknown_object_properties_are_404(client: httpx.Client, path: str) -> None:
    assert client.get(path).status_code == 404


def test_unique_property_for_another_object(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox(unique_properties=("contacts.crm_key", "legacy_call_id"))
    with client_for(sandbox) as client:
        assert client.get("/crm/v3/properties/contacts/crm_key").json()["hasUniqueValue"] is True
        assert client.get("/crm/v3/properties/calls/crm_key").status_code == 404
        assert client.get("/crm/v3/properties/calls/legacy_call_id").json()["hasUniqueValue"]
        response = client.post(
            upsert_path("contacts"), json=batch(record("K-1", "crm_key", firstname="K"))
        )
        assert response.status_code == 200
    assert set(sandbox.store_records(object_type="contacts")) == {"K-1"}
    with pytest.raises(ValueError, match="unknown object"):
        sandbox.configure(unique_properties=("widgets.x",))


def test_properties_can_be_created_on_any_object(client: httpx.Client) -> None:
    body = {
        "name": "deal_source",
        "label": "Source",
        "type": "enumeration",
        "fieldType": "select",
        "groupName": "dealinformation",
        "options": [{"label": "Web", "value": "web"}],
    }
    created = client.post("/crm/properties/2026-03/deals", json=body)
    assert created.status_code == 201
    item = record("D-1", "external_deal_id", "t", dealname="d", dealstage="closedwon",
                  pipeline="default", deal_source="phone")  # fmt: skip
    response = client.post(upsert_path("deals"), json=batch(item))
    assert response.json()["errors"][0]["errors"][0]["message"] == (
        "phone was not one of the allowed options: [web]"
    )
