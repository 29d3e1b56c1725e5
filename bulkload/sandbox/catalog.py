"""HubSpot's default properties of every object the sandbox serves: a useful subset
per object, with realistic types and option labels distinct from their values, as
`GET /crm/v3/properties/{object}` shows them on a fresh portal.

Only data here; objects.py ties each list to its object. Where HubSpot's options
are portal data (activity types, custom pipelines) the values below are what a
typical portal holds, not HubSpot constants.
"""

from __future__ import annotations

from collections.abc import Iterable

from bulkload.sandbox.schema import Option, PropertyDef


def _enum(
    name: str,
    label: str,
    options: Iterable[tuple[str, str]],
    description: str,
    *,
    group: str,
    field_type: str = "select",
) -> PropertyDef:
    return PropertyDef(
        name,
        label,
        "enumeration",
        field_type,
        description,
        group_name=group,
        options=tuple(Option(value, text) for value, text in options),
    )


def _text(
    name: str, label: str, description: str, *, group: str, field_type: str = "text"
) -> PropertyDef:
    return PropertyDef(name, label, "string", field_type, description, group_name=group)


def _number(
    name: str, label: str, description: str, *, group: str, integral: bool = False
) -> PropertyDef:
    return PropertyDef(
        name, label, "number", "number", description, group_name=group, integral=integral
    )


def _datetime(name: str, label: str, description: str, *, group: str) -> PropertyDef:
    return PropertyDef(name, label, "datetime", "date", description, group_name=group)


def _bool(name: str, label: str, description: str, *, group: str) -> PropertyDef:
    return PropertyDef(
        name,
        label,
        "bool",
        "booleancheckbox",
        description,
        group_name=group,
        options=(Option("true", "Yes"), Option("false", "No")),
    )


def _owner(label: str, description: str, *, group: str) -> PropertyDef:
    return PropertyDef(
        "hubspot_owner_id",
        label,
        "enumeration",
        "select",
        description,
        group_name=group,
        external_options=True,
        referenced_object_type="OWNER",
    )


def _system(created: str, modified: str, *, group: str) -> tuple[PropertyDef, ...]:
    """The record id and the two timestamps HubSpot sets on every record (read-only)."""
    return (
        PropertyDef(
            "hs_object_id",
            "Record ID",
            "number",
            "number",
            "The record's unique ID.",
            group_name=group,
            read_only_value=True,
        ),
        PropertyDef(
            created,
            "Create date",
            "datetime",
            "date",
            "When the record was created.",
            group_name=group,
            read_only_value=True,
        ),
        PropertyDef(
            modified,
            "Last modified date",
            "datetime",
            "date",
            "When the record was last modified.",
            group_name=group,
            read_only_value=True,
        ),
    )


def _timestamp(description: str, *, group: str) -> PropertyDef:
    return PropertyDef(
        "hs_timestamp", "Activity date", "datetime", "date", description, group_name=group
    )


# --- calls (0-48)

CALL_GROUP = "callinformation"
_CALL_STATUSES = (
    "BUSY",
    "CALLING_CRM_USER",
    "CANCELED",
    "COMPLETED",
    "CONNECTING",
    "FAILED",
    "IN_PROGRESS",
    "NO_ANSWER",
    "QUEUED",
    "RINGING",
)
CALL_DISPOSITIONS = (  # HubSpot's default call outcomes (DOC-calls)
    ("9d9162e7-6cf3-4944-bf63-4dff82258764", "Busy"),
    ("f240bbac-87c9-4f6e-bf70-924b57d47db7", "Connected"),
    ("a4c4c377-d246-4b32-a13b-75a56a4cd0ff", "Left live message"),
    ("b2cf5968-551e-4856-9783-52b3da59a7d0", "Left voicemail"),
    ("73a0d17f-1163-4015-bdd5-ec830791da20", "No answer"),
    ("17b47fee-58de-441e-a44c-c6300d46f273", "Wrong number"),
)
_G = CALL_GROUP
CALLS: tuple[PropertyDef, ...] = (
    _timestamp(
        "When the call happened; places it on the record timeline. Required on create.", group=_G
    ),
    _text("hs_call_title", "Call title", "The title of the call.", group=_G),
    _text(
        "hs_call_body",
        "Call notes",
        "The description or notes of the call.",
        group=_G,
        field_type="html",
    ),
    _enum(
        "hs_call_direction",
        "Call direction",
        (("INBOUND", "Inbound"), ("OUTBOUND", "Outbound")),
        "The direction of the call from the HubSpot user's perspective.",
        group=_G,
    ),
    _enum(
        "hs_call_status",
        "Call status",
        ((s, s.replace("_", " ").title()) for s in _CALL_STATUSES),
        "The status of the call.",
        group=_G,
    ),
    _number(
        "hs_call_duration",
        "Call duration",
        "The duration of the call in milliseconds.",
        group=_G,
        integral=True,
    ),
    _enum(
        "hs_call_disposition",
        "Call outcome",
        CALL_DISPOSITIONS,
        "The outcome of the call.",
        group=_G,
    ),
    _text("hs_call_from_number", "From number", "The phone number that placed the call.", group=_G),
    _text("hs_call_to_number", "To number", "The phone number that received the call.", group=_G),
    _text(
        "hs_call_recording_url",
        "Recording URL",
        "The URL of the call recording (.mp3 or .wav).",
        group=_G,
    ),
    _enum(
        "hs_call_source",
        "Call source",
        (("INTEGRATIONS_PLATFORM", "Integrations platform"),),
        "Where the call came from; if set, INTEGRATIONS_PLATFORM.",
        group=_G,
    ),
    _number(
        "hs_call_callee_object_id",
        "Callee object ID",
        "The ID of the record that is the callee (inbound) or dialer (outbound).",
        group=_G,
        integral=True,
    ),
    _enum(
        "hs_call_callee_object_type",
        "Callee object type",
        (("CONTACT", "Contact"), ("COMPANY", "Company")),
        "The type of the callee record.",
        group=_G,
    ),
    _text("hs_call_external_id", "External ID", "The ID of the call in the calling app.", group=_G),
    _bool("hs_call_has_voicemail", "Has voicemail", "Whether the call left a voicemail.", group=_G),
    # Portal-defined options in HubSpot; free text here rather than invented options.
    _text("hs_activity_type", "Call and meeting type", "The type of the call.", group=_G),
    _text(
        "hs_attachment_ids",
        "Attachment IDs",
        "IDs of the call's attachments, ;-separated.",
        group=_G,
    ),
    _owner("Activity assigned to", "The owner of the call (shown as its creator).", group=_G),
    PropertyDef(
        "hs_body_preview",
        "Body preview",
        "string",
        "text",
        "A preview of the call notes.",
        group_name=_G,
        read_only_value=True,
    ),
    *_system("hs_createdate", "hs_lastmodifieddate", group=_G),
)

# --- contacts (0-1)

LIFECYCLE_STAGES = (
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
)
_G = "contactinformation"
CONTACTS: tuple[PropertyDef, ...] = (
    PropertyDef(
        "email",
        "Email",
        "string",
        "text",
        "A contact's email address. Upserts may use it as idProperty.",
        group_name=_G,
        email=True,
    ),
    _text("firstname", "First Name", "A contact's first name.", group=_G),
    _text("lastname", "Last Name", "A contact's last name.", group=_G),
    PropertyDef(
        "phone",
        "Phone Number",
        "string",
        "phonenumber",
        "A contact's primary phone number.",
        group_name=_G,
    ),
    PropertyDef(
        "mobilephone",
        "Mobile Phone Number",
        "string",
        "phonenumber",
        "A contact's mobile phone number.",
        group_name=_G,
    ),
    _text("company", "Company Name", "Name of the contact's company.", group=_G),
    _text("jobtitle", "Job Title", "A contact's job title.", group=_G),
    _text("city", "City", "A contact's city of residence.", group=_G),
    _text("country", "Country/Region", "A contact's country.", group=_G),
    _enum(
        "lifecyclestage",
        "Lifecycle Stage",
        LIFECYCLE_STAGES,
        "The qualification of contacts to sales readiness.",
        group=_G,
        field_type="radio",
    ),
    _enum(
        "hs_lead_status",
        "Lead Status",
        (
            ("NEW", "New"),
            ("OPEN", "Open"),
            ("IN_PROGRESS", "In Progress"),
            ("OPEN_DEAL", "Open Deal"),
            ("UNQUALIFIED", "Unqualified"),
            ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
            ("CONNECTED", "Connected"),
            ("BAD_TIMING", "Bad Timing"),
        ),
        "The contact's sales, prospecting or outreach status.",
        group=_G,
        field_type="radio",
    ),
    _enum(
        "hs_buying_role",
        "Buying Role",
        (
            ("BLOCKER", "Blocker"),
            ("BUDGET_HOLDER", "Budget Holder"),
            ("CHAMPION", "Champion"),
            ("DECISION_MAKER", "Decision Maker"),
            ("END_USER", "End User"),
            ("EXECUTIVE_SPONSOR", "Executive Sponsor"),
            ("INFLUENCER", "Influencer"),
            ("LEGAL_AND_COMPLIANCE", "Legal and Compliance"),
            ("OTHER", "Other"),
        ),
        "The roles the contact plays in the buying process (several allowed).",
        group=_G,
        field_type="checkbox",
    ),
    _owner("Contact owner", "The owner of the contact.", group=_G),
    PropertyDef(
        "hs_email_domain",
        "Email Domain",
        "string",
        "text",
        "The domain of the contact's email address.",
        group_name=_G,
        read_only_value=True,
    ),
    *_system("createdate", "lastmodifieddate", group=_G),
)

# --- companies (0-2)

_G = "companyinformation"
COMPANIES: tuple[PropertyDef, ...] = (
    _text("name", "Company name", "The name of the company.", group=_G),
    _text("domain", "Company Domain Name", "The company's website domain.", group=_G),
    _text("website", "Website URL", "The company's website.", group=_G),
    PropertyDef(
        "phone", "Phone Number", "string", "phonenumber", "The company's phone.", group_name=_G
    ),
    _text("city", "City", "The city of the company's headquarters.", group=_G),
    _text("country", "Country/Region", "The country of the company's headquarters.", group=_G),
    _enum(
        "industry",
        "Industry",
        (
            ("ACCOUNTING", "Accounting"),
            ("COMPUTER_SOFTWARE", "Computer Software"),
            ("FINANCIAL_SERVICES", "Financial Services"),
            ("HOSPITAL_HEALTH_CARE", "Hospital & Health Care"),
            ("INFORMATION_TECHNOLOGY_AND_SERVICES", "Information Technology and Services"),
            ("RETAIL", "Retail"),
            ("TELECOMMUNICATIONS", "Telecommunications"),
        ),
        "The type of business the company performs.",
        group=_G,
    ),
    _enum(
        "type",
        "Type",
        (
            ("PROSPECT", "Prospect"),
            ("PARTNER", "Partner"),
            ("RESELLER", "Reseller"),
            ("VENDOR", "Vendor"),
            ("OTHER", "Other"),
        ),
        "The company's relationship with your business.",
        group=_G,
    ),
    _number(
        "numberofemployees",
        "Number of Employees",
        "The total number of employees.",
        group=_G,
        integral=True,
    ),
    _number("annualrevenue", "Annual Revenue", "The actual or estimated revenue.", group=_G),
    _bool("is_public", "Is Public", "Whether the company is publicly traded.", group=_G),
    _enum(
        "lifecyclestage",
        "Lifecycle Stage",
        LIFECYCLE_STAGES,
        "The qualification of companies to sales readiness.",
        group=_G,
        field_type="radio",
    ),
    _owner("Company owner", "The owner of the company.", group=_G),
    *_system("createdate", "hs_lastmodifieddate", group=_G),
)

# --- deals (0-3)

DEAL_PIPELINES = (("default", "Sales Pipeline"), ("7654321", "Renewals Pipeline"))
DEAL_STAGES = (
    ("appointmentscheduled", "Appointment Scheduled"),
    ("qualifiedtobuy", "Qualified To Buy"),
    ("presentationscheduled", "Presentation Scheduled"),
    ("decisionmakerboughtin", "Decision Maker Bought-In"),
    ("contractsent", "Contract Sent"),
    ("closedwon", "Closed Won"),
    ("closedlost", "Closed Lost"),
    ("7654322", "Renewal Due"),
    ("7654323", "Renewed"),
)
_G = "dealinformation"
DEALS: tuple[PropertyDef, ...] = (
    _text("dealname", "Deal Name", "The name given to this deal.", group=_G),
    _number("amount", "Amount", "The total amount of the deal.", group=_G),
    _datetime("closedate", "Close Date", "When the deal is expected to close.", group=_G),
    _enum("pipeline", "Pipeline", DEAL_PIPELINES, "The pipeline the deal is in.", group=_G),
    _enum("dealstage", "Deal Stage", DEAL_STAGES, "The stage of the deal.", group=_G),
    _enum(
        "dealtype",
        "Deal Type",
        (("newbusiness", "New Business"), ("existingbusiness", "Existing Business")),
        "The type of deal.",
        group=_G,
        field_type="radio",
    ),
    _enum(
        "hs_priority",
        "Priority",
        (("low", "Low"), ("medium", "Medium"), ("high", "High")),
        "The priority of the deal.",
        group=_G,
    ),
    _text("description", "Deal Description", "Description of the deal.", group=_G),
    _owner("Deal owner", "The owner of the deal.", group=_G),
    *_system("createdate", "hs_lastmodifieddate", group=_G),
)

# --- tickets (0-5)

TICKET_PIPELINES = (("0", "Support Pipeline"),)
TICKET_STAGES = (
    ("1", "New"),
    ("2", "Waiting on contact"),
    ("3", "Waiting on us"),
    ("4", "Closed"),
)
_G = "ticketinformation"
TICKETS: tuple[PropertyDef, ...] = (
    _text("subject", "Ticket name", "Short summary of the ticket.", group=_G),
    _text("content", "Ticket description", "Text in the ticket.", group=_G, field_type="textarea"),
    _enum("hs_pipeline", "Pipeline", TICKET_PIPELINES, "The ticket's pipeline.", group=_G),
    _enum(
        "hs_pipeline_stage",
        "Ticket status",
        TICKET_STAGES,
        "The ticket's pipeline stage.",
        group=_G,
    ),
    _enum(
        "hs_ticket_priority",
        "Priority",
        (("LOW", "Low"), ("MEDIUM", "Medium"), ("HIGH", "High"), ("URGENT", "Urgent")),
        "The level of attention needed on the ticket.",
        group=_G,
    ),
    _enum(
        "hs_ticket_category",
        "Category",
        (
            ("PRODUCT_ISSUE", "Product issue"),
            ("BILLING_ISSUE", "Billing issue"),
            ("FEATURE_REQUEST", "Feature request"),
            ("GENERAL_INQUIRY", "General inquiry"),
        ),
        "The main reasons for the ticket (several allowed).",
        group=_G,
        field_type="checkbox",
    ),
    _enum(
        "source_type",
        "Source",
        (("CHAT", "Chat"), ("EMAIL", "Email"), ("FORM", "Form"), ("PHONE", "Phone")),
        "Channel where the ticket was originally submitted.",
        group=_G,
    ),
    _owner("Ticket owner", "The owner of the ticket.", group=_G),
    *_system("createdate", "hs_lastmodifieddate", group=_G),
)

# --- emails (0-49)

_G = "emailinformation"
EMAILS: tuple[PropertyDef, ...] = (
    _timestamp("When the email was sent. Required on create.", group=_G),
    _enum(
        "hs_email_direction",
        "Email direction",
        (
            ("EMAIL", "Sent by a CRM user"),
            ("INCOMING_EMAIL", "Reply from a contact"),
            ("FORWARDED_EMAIL", "Forwarded"),
        ),
        "The direction the email was sent in.",
        group=_G,
    ),
    _enum(
        "hs_email_status",
        "Email send status",
        (
            ("BOUNCED", "Bounced"),
            ("FAILED", "Failed"),
            ("SCHEDULED", "Scheduled"),
            ("SENDING", "Sending"),
            ("SENT", "Sent"),
        ),
        "The send status of the email.",
        group=_G,
    ),
    _text("hs_email_subject", "Email subject", "The subject line of the email.", group=_G),
    _text(
        "hs_email_text",
        "Email body",
        "The body of the email.",
        group=_G,
        field_type="textarea",
    ),
    _text(
        "hs_email_html", "Email HTML", "The HTML body of the email.", group=_G, field_type="html"
    ),
    _text(
        "hs_email_headers",
        "Email headers",
        "The email's headers as a JSON string (from, to, cc, bcc).",
        group=_G,
    ),
    _owner("Activity assigned to", "The owner of the email.", group=_G),
    *_system("hs_createdate", "hs_lastmodifieddate", group=_G),
)

# --- meetings (0-47)

_G = "meetinginformation"
MEETINGS: tuple[PropertyDef, ...] = (
    _timestamp("When the meeting took place. Required on create.", group=_G),
    _text("hs_meeting_title", "Meeting name", "The title of the meeting.", group=_G),
    _text(
        "hs_meeting_body",
        "Meeting description",
        "The description of the meeting.",
        group=_G,
        field_type="html",
    ),
    _text(
        "hs_internal_meeting_notes",
        "Internal notes",
        "Internal notes the team takes during the meeting.",
        group=_G,
        field_type="html",
    ),
    _text("hs_meeting_external_url", "External URL", "The meeting's calendar link.", group=_G),
    _text("hs_meeting_location", "Location", "Where the meeting takes place.", group=_G),
    _datetime("hs_meeting_start_time", "Start time", "When the meeting starts.", group=_G),
    _datetime("hs_meeting_end_time", "End time", "When the meeting ends.", group=_G),
    _enum(
        "hs_meeting_outcome",
        "Meeting outcome",
        (
            ("SCHEDULED", "Scheduled"),
            ("COMPLETED", "Completed"),
            ("RESCHEDULED", "Rescheduled"),
            ("NO_SHOW", "No show"),
            ("CANCELED", "Canceled"),
        ),
        "The outcome of the meeting.",
        group=_G,
    ),
    _text("hs_activity_type", "Call and meeting type", "The type of the meeting.", group=_G),
    _owner("Activity assigned to", "The owner of the meeting.", group=_G),
    *_system("hs_createdate", "hs_lastmodifieddate", group=_G),
)

# --- notes (0-46)

_G = "noteinformation"
NOTES: tuple[PropertyDef, ...] = (
    _timestamp("When the note was created. Required on create.", group=_G),
    _text("hs_note_body", "Note body", "The note's text.", group=_G, field_type="html"),
    _text(
        "hs_attachment_ids",
        "Attachment IDs",
        "IDs of the note's attachments, ;-separated.",
        group=_G,
    ),
    _owner("Activity assigned to", "The owner of the note.", group=_G),
    PropertyDef(
        "hs_body_preview",
        "Body preview",
        "string",
        "text",
        "A preview of the note's text.",
        group_name=_G,
        read_only_value=True,
    ),
    *_system("hs_createdate", "hs_lastmodifieddate", group=_G),
)

# --- tasks (0-27)

_G = "taskinformation"
TASKS: tuple[PropertyDef, ...] = (
    _timestamp("The task's due date. Required on create.", group=_G),
    _text("hs_task_subject", "Task Title", "The title of the task.", group=_G),
    _text("hs_task_body", "Notes", "The task's notes.", group=_G, field_type="html"),
    _enum(
        "hs_task_status",
        "Task Status",
        (
            ("NOT_STARTED", "Not started"),
            ("IN_PROGRESS", "In progress"),
            ("WAITING", "Waiting"),
            ("COMPLETED", "Completed"),
            ("DEFERRED", "Deferred"),
        ),
        "The status of the task.",
        group=_G,
    ),
    _enum(
        "hs_task_priority",
        "Priority",
        (("NONE", "None"), ("LOW", "Low"), ("MEDIUM", "Medium"), ("HIGH", "High")),
        "The priority of the task.",
        group=_G,
    ),
    _enum(
        "hs_task_type",
        "Task Type",
        (("CALL", "Call"), ("EMAIL", "Email"), ("TODO", "To-do")),
        "The type of the task.",
        group=_G,
    ),
    _owner("Assigned to", "The owner of the task.", group=_G),
    *_system("hs_createdate", "hs_lastmodifieddate", group=_G),
)

# --- the custom object: machines (2-123456)

_G = "machine_information"
MACHINES: tuple[PropertyDef, ...] = (
    PropertyDef(
        "machine_name",
        "Machine name",
        "string",
        "text",
        "The machine's display name. Required on create.",
        group_name=_G,
        hubspot_defined=False,
    ),
    PropertyDef(
        "machine_status",
        "Status",
        "enumeration",
        "select",
        "Where the machine is in its life.",
        group_name=_G,
        hubspot_defined=False,
        options=(
            Option("ACTIVE", "Active"),
            Option("MAINTENANCE", "In maintenance"),
            Option("RETIRED", "Retired"),
        ),
    ),
    PropertyDef(
        "purchase_date",
        "Purchase date",
        "date",
        "date",
        "The day the machine was bought (a date, midnight UTC).",
        group_name=_G,
        hubspot_defined=False,
    ),
    PropertyDef(
        "running_hours",
        "Running hours",
        "number",
        "number",
        "Hours the machine has run.",
        group_name=_G,
        hubspot_defined=False,
    ),
    PropertyDef(
        "is_leased",
        "Leased",
        "bool",
        "booleancheckbox",
        "Whether the machine is leased.",
        group_name=_G,
        hubspot_defined=False,
        options=(Option("true", "Yes"), Option("false", "No")),
    ),
    _owner("Machine owner", "The owner of the machine.", group=_G),
    *_system("hs_createdate", "hs_lastmodifieddate", group=_G),
)
