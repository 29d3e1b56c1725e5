"""Conformance: HubSpot's official Python client, pointed at the sandbox, parses
every answer into its models and raises its own exceptions for the errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm.objects.calls import (
    ApiException,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchResponseSimplePublicUpsertObject,
    BatchResponseSimplePublicUpsertObjectWithErrors,
    SimplePublicObjectBatchInputUpsert,
)
from hubspot.crm.objects.calls.exceptions import ForbiddenException, UnauthorizedException
from hubspot.crm.properties import PropertyCreate

from bulkload.sandbox import SandboxServer

from .helpers import TOKEN, FakeClock


def hubspot(sandbox: SandboxServer, token: str = TOKEN) -> Any:
    return HubSpot(access_token=token, host=sandbox.base_url)


def upsert_body(*inputs: tuple[str, dict[str, str]], id_property: str = "external_call_id") -> Any:
    return BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[
            SimplePublicObjectBatchInputUpsert(
                id=key,
                id_property=id_property,
                object_write_trace_id=f"row-{key}",
                properties=props,
            )
            for key, props in inputs
        ]
    )


def upsert(client: Any, body: Any) -> tuple[Any, int, Any]:
    return client.crm.objects.calls.batch_api.upsert_with_http_info(
        batch_input_simple_public_object_batch_input_upsert=body
    )


GOOD = {"hs_timestamp": "1714557600000", "hs_call_title": "Intro", "hs_call_status": "COMPLETED"}


def test_200_parses_into_the_upsert_model(sandbox: SandboxServer) -> None:
    data, status, _headers = upsert(hubspot(sandbox), upsert_body(("A-1", GOOD), ("A-2", GOOD)))

    assert status == 200
    assert isinstance(data, BatchResponseSimplePublicUpsertObject)
    assert data.status == "COMPLETE"
    assert isinstance(data.started_at, datetime) and isinstance(data.completed_at, datetime)
    result = data.results[0]
    assert result.new is True
    assert result.archived is False
    assert result.object_write_trace_id == "row-A-1"
    assert isinstance(result.created_at, datetime) and result.created_at.tzinfo is not None
    assert result.properties["external_call_id"] == "A-1"
    assert result.properties["hs_timestamp"] == "2024-05-01T10:00:00.000Z"
    assert result.id == result.properties["hs_object_id"]

    again = hubspot(sandbox).crm.objects.calls.batch_api.upsert(
        batch_input_simple_public_object_batch_input_upsert=upsert_body(("A-1", GOOD))
    )
    assert again.results[0].new is False


def test_207_parses_into_the_with_errors_model(sandbox: SandboxServer) -> None:
    bad = {**GOOD, "hs_call_status": "DONE"}
    data, status, _ = upsert(hubspot(sandbox), upsert_body(("A-1", GOOD), ("A-2", bad)))

    assert status == 207
    assert isinstance(data, BatchResponseSimplePublicUpsertObjectWithErrors)
    assert data.num_errors == 1
    assert [r.object_write_trace_id for r in data.results] == ["row-A-1"]
    error = data.errors[0]
    assert error.category == "VALIDATION_ERROR"
    assert error.context == {"objectWriteTraceId": ["row-A-2"]}
    assert error.errors[0].code == "INVALID_OPTION"
    assert error.errors[0].context == {"propertyName": ["hs_call_status"]}
    assert error.message.startswith("Property values were not valid: ")


def raised(call: Callable[[], Any], kind: type[Exception] = ApiException) -> Any:
    with pytest.raises(kind) as info:
        call()
    return info.value


def test_400_raises_with_hubspots_body(sandbox: SandboxServer) -> None:
    client = hubspot(sandbox)
    exc = raised(lambda: upsert(client, upsert_body(("A-1", GOOD), ("A-1", GOOD))))
    assert exc.status == 400
    body = json.loads(exc.body)
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"] == "Duplicate IDs found in batch input: [A-1]. IDs must be unique"
    assert exc.headers["content-type"] == "application/json;charset=utf-8"

    exc = raised(lambda: upsert(client, upsert_body(("A-2", GOOD), id_property="hs_object_id")))
    assert exc.status == 400
    assert "non-unique 0-48 property hs_object_id" in json.loads(exc.body)["message"]


def test_401_and_403_raise_their_exceptions(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox(read_only_tokens=("viewer",))
    exc = raised(
        lambda: upsert(hubspot(sandbox, "wrong"), upsert_body(("A-1", GOOD))), UnauthorizedException
    )
    assert exc.status == 401
    assert json.loads(exc.body)["category"] == "INVALID_AUTHENTICATION"

    exc = raised(
        lambda: upsert(hubspot(sandbox, "viewer"), upsert_body(("A-1", GOOD))), ForbiddenException
    )
    assert exc.status == 403
    body = json.loads(exc.body)
    assert body["category"] == "MISSING_SCOPES"
    assert body["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.contacts.write"]


def test_409_raises_for_a_unique_value_conflict(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    sandbox = start_sandbox(unique_properties=("legacy_id",), mode="strict")
    client = hubspot(sandbox)
    upsert(client, upsert_body(("A-1", {**GOOD, "legacy_id": "L"})))
    exc = raised(lambda: upsert(client, upsert_body(("A-2", {**GOOD, "legacy_id": "L"}))))
    assert exc.status == 409
    assert json.loads(exc.body)["category"] == "CONFLICT"


def test_429_raises_with_the_rate_limit_body(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox(clock=FakeClock(), rate_limit_max=1)
    client = hubspot(sandbox)
    upsert(client, upsert_body(("A-1", GOOD)))
    exc = raised(lambda: upsert(client, upsert_body(("A-2", GOOD))))
    assert exc.status == 429
    body = json.loads(exc.body)
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["errorType"] == "RATE_LIMIT"
    assert exc.headers["X-HubSpot-RateLimit-Remaining"] == "0"


def test_properties_api_parses(sandbox: SandboxServer) -> None:
    core = hubspot(sandbox).crm.properties.core_api
    listing = core.get_all("calls")
    by_name = {p.name: p for p in listing.results}
    assert by_name["hs_timestamp"].type == "datetime"
    assert by_name["external_call_id"].has_unique_value is True
    assert by_name["hs_call_status"].options[0].hidden is False
    assert by_name["hs_call_status"].modification_metadata.read_only_value is False
    assert isinstance(by_name["hs_timestamp"].created_at, datetime)

    one = core.get_by_name("calls", "hs_call_direction")
    assert [o.value for o in one.options] == ["INBOUND", "OUTBOUND"]

    created = core.create(
        "calls",
        property_create=PropertyCreate(
            name="crm_key",
            label="CRM key",
            type="string",
            field_type="text",
            group_name="callinformation",
            has_unique_value=True,
        ),
    )
    assert created.has_unique_value is True
    data, status, _ = upsert(hubspot(sandbox), upsert_body(("K-1", GOOD), id_property="crm_key"))
    assert status == 200
    assert data.results[0].properties["crm_key"] == "K-1"


# --- the other endpoints the SDK wraps: batch read, owners, associations v4


def test_batch_read_parses_found_and_not_found(start_sandbox: Callable[..., SandboxServer]) -> None:
    from hubspot.crm.objects import (
        BatchReadInputSimplePublicObjectId,
        BatchResponseSimplePublicObject,
        BatchResponseSimplePublicObjectWithErrors,
        SimplePublicObjectId,
    )

    sandbox = start_sandbox(contacts=2)
    body = BatchReadInputSimplePublicObjectId(
        id_property="email",
        properties=["email", "firstname"],
        properties_with_history=[],
        inputs=[SimplePublicObjectId(id="Contact-00001@example.com")],
    )
    batch_api = hubspot(sandbox).crm.objects.batch_api
    data, status, _ = batch_api.read_with_http_info(
        "contacts", batch_read_input_simple_public_object_id=body
    )
    assert status == 200
    assert isinstance(data, BatchResponseSimplePublicObject)
    (result,) = data.results
    assert result.id == "1000001" and result.properties["email"] == "contact-00001@example.com"
    assert isinstance(result.created_at, datetime)

    body.inputs.append(SimplePublicObjectId(id="nobody@example.com"))
    data, status, _ = batch_api.read_with_http_info(
        "contacts", batch_read_input_simple_public_object_id=body
    )
    assert status == 207
    assert isinstance(data, BatchResponseSimplePublicObjectWithErrors)
    assert data.num_errors == 1
    assert data.errors[0].category == "OBJECT_NOT_FOUND"
    assert data.errors[0].context == {"ids": ["nobody@example.com"]}


def test_owners_api_parses_and_pages(start_sandbox: Callable[..., SandboxServer]) -> None:
    sandbox = start_sandbox(owners=30)
    owners_api = hubspot(sandbox).crm.owners.owners_api
    page = owners_api.get_page(limit=20)
    assert [o.id for o in page.results][:2] == ["10007919", "10015838"]
    assert page.results[0].email == "owner-001@example.com"
    assert isinstance(page.results[0].created_at, datetime)
    assert page.results[0].teams[0].primary is True
    rest = owners_api.get_page(limit=20, after=page.paging.next.after)
    assert len(rest.results) == 10 and rest.paging is None
    assert owners_api.get_page(email="owner-030@example.com").results[0].user_id == 9_000_030
    assert owners_api.get_by_id("10007919").first_name == page.results[0].first_name


def test_associations_v4_parse(start_sandbox: Callable[..., SandboxServer]) -> None:
    from hubspot.crm.associations.v4 import (
        AssociationSpec,
        BatchInputPublicAssociationMultiPost,
        BatchInputPublicDefaultAssociationMultiPost,
        BatchResponseLabelsBetweenObjectPair,
        BatchResponseLabelsBetweenObjectPairWithErrors,
        BatchResponsePublicDefaultAssociation,
        PublicAssociationMultiPost,
        PublicDefaultAssociationMultiPost,
        PublicObjectId,
    )

    sandbox = start_sandbox(contacts=2)
    client = hubspot(sandbox)
    data, _, _ = upsert(client, upsert_body(("A-1", GOOD)))
    call_id = data.results[0].id
    v4 = client.crm.associations.v4
    default = v4.batch_api.create_default(
        "calls",
        "contacts",
        batch_input_public_default_association_multi_post=BatchInputPublicDefaultAssociationMultiPost(
            inputs=[
                PublicDefaultAssociationMultiPost(
                    _from=PublicObjectId(id=call_id), to=PublicObjectId(id="1000001")
                ),
                PublicDefaultAssociationMultiPost(
                    _from=PublicObjectId(id=call_id), to=PublicObjectId(id="999")
                ),
            ]
        ),
    )
    assert isinstance(default, BatchResponsePublicDefaultAssociation)  # not None: a 200
    assert default.results[0].association_spec.association_type_id == 194
    assert default.results[0].to.id == "1000001"
    assert default.num_errors == 1
    assert default.errors[0].context["toObjectId"] == ["999"]

    spec = [AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=194)]
    created = v4.batch_api.create(
        "calls",
        "contacts",
        batch_input_public_association_multi_post=BatchInputPublicAssociationMultiPost(
            inputs=[
                PublicAssociationMultiPost(
                    _from=PublicObjectId(id=call_id), to=PublicObjectId(id="1000002"), types=spec
                )
            ]
        ),
    )
    assert isinstance(created, BatchResponseLabelsBetweenObjectPair)  # a 201
    assert created.results[0].to_object_id == "1000002"
    partial = v4.batch_api.create(
        "calls",
        "contacts",
        batch_input_public_association_multi_post=BatchInputPublicAssociationMultiPost(
            inputs=[
                PublicAssociationMultiPost(
                    _from=PublicObjectId(id=call_id), to=PublicObjectId(id="404"), types=spec
                )
            ]
        ),
    )
    assert isinstance(partial, BatchResponseLabelsBetweenObjectPairWithErrors)  # a 207
    assert partial.num_errors == 1

    page = v4.basic_api.get_page("calls", call_id, "contacts")
    assert sorted(int(r.to_object_id) for r in page.results) == [1000001, 1000002]
    assert page.results[0].association_types[0].type_id == 194


def test_a_200_with_errors_loses_them_in_the_sdks_200_model(
    start_sandbox: Callable[..., SandboxServer],
) -> None:
    # HubSpot's 2025-09+ specs answer partial batches with 200: the SDK then picks the
    # model without errors, so a client must read the body, not the status.
    sandbox = start_sandbox(partial_status=200)
    bad = {**GOOD, "hs_call_status": "DONE"}
    data, status, _ = upsert(hubspot(sandbox), upsert_body(("A-1", GOOD), ("A-2", bad)))
    assert status == 200
    assert isinstance(data, BatchResponseSimplePublicUpsertObject)
    assert not hasattr(data, "num_errors")
    assert len(data.results) == 1
