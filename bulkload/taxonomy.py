"""The error taxonomy: every failed row has an errorType (what) and a category
(where a person goes to fix it), modelled on HubSpot's sync-health cards.
See DESIGN.md section 4."""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    SOURCE_DATA = "SOURCE_DATA"
    PROPERTY_MAPPINGS = "PROPERTY_MAPPINGS"
    PROPERTY_VALUES = "PROPERTY_VALUES"
    PICKLISTS = "PICKLISTS"
    DUPLICATES = "DUPLICATES"
    PERMISSIONS = "PERMISSIONS"
    ASSOCIATIONS = "ASSOCIATIONS"
    OTHER = "OTHER"


class ErrorType(StrEnum):
    MALFORMED_ROW = "MALFORMED_ROW"
    MISSING_ID_VALUE = "MISSING_ID_VALUE"
    INVALID_TIMESTAMP = "INVALID_TIMESTAMP"
    INVALID_NUMBER = "INVALID_NUMBER"
    VALUE_TOO_LONG = "VALUE_TOO_LONG"
    PROPERTY_DOESNT_EXIST = "PROPERTY_DOESNT_EXIST"
    ID_PROPERTY_NOT_UNIQUE = "ID_PROPERTY_NOT_UNIQUE"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    INVALID_PROPERTY_VALUE = "INVALID_PROPERTY_VALUE"
    MISSING_REQUIRED_PROPERTY = "MISSING_REQUIRED_PROPERTY"
    INVALID_EMAIL_ADDRESS = "INVALID_EMAIL_ADDRESS"
    INVALID_OWNER_ID = "INVALID_OWNER_ID"
    VALIDATION_RULE = "VALIDATION_RULE"
    READ_ONLY_VALUE = "READ_ONLY_VALUE"
    INVALID_ENUM_PROPERTY = "INVALID_ENUM_PROPERTY"
    AMBIGUOUS_ENUMERATION_OPTION = "AMBIGUOUS_ENUMERATION_OPTION"
    DUPLICATE_ID_IN_SOURCE = "DUPLICATE_ID_IN_SOURCE"
    CONFLICTING_UNIQUE_VALUE = "CONFLICTING_UNIQUE_VALUE"
    MISSING_SCOPES = "MISSING_SCOPES"
    INVALID_TOKEN = "INVALID_TOKEN"
    ASSOCIATED_RECORD_NOT_FOUND = "ASSOCIATED_RECORD_NOT_FOUND"
    INVALID_ASSOCIATION = "INVALID_ASSOCIATION"
    UNKNOWN_ERROR = "UNKNOWN_ERROR"


CATEGORY_OF: dict[ErrorType, Category] = {
    ErrorType.MALFORMED_ROW: Category.SOURCE_DATA,
    ErrorType.MISSING_ID_VALUE: Category.SOURCE_DATA,
    ErrorType.INVALID_TIMESTAMP: Category.SOURCE_DATA,
    ErrorType.INVALID_NUMBER: Category.SOURCE_DATA,
    ErrorType.VALUE_TOO_LONG: Category.SOURCE_DATA,
    ErrorType.PROPERTY_DOESNT_EXIST: Category.PROPERTY_MAPPINGS,
    ErrorType.ID_PROPERTY_NOT_UNIQUE: Category.PROPERTY_MAPPINGS,
    ErrorType.TYPE_MISMATCH: Category.PROPERTY_MAPPINGS,
    ErrorType.INVALID_PROPERTY_VALUE: Category.PROPERTY_VALUES,
    ErrorType.MISSING_REQUIRED_PROPERTY: Category.PROPERTY_VALUES,
    ErrorType.INVALID_EMAIL_ADDRESS: Category.PROPERTY_VALUES,
    ErrorType.INVALID_OWNER_ID: Category.PROPERTY_VALUES,
    ErrorType.VALIDATION_RULE: Category.PROPERTY_VALUES,
    ErrorType.READ_ONLY_VALUE: Category.PROPERTY_VALUES,
    ErrorType.INVALID_ENUM_PROPERTY: Category.PICKLISTS,
    ErrorType.AMBIGUOUS_ENUMERATION_OPTION: Category.PICKLISTS,
    ErrorType.DUPLICATE_ID_IN_SOURCE: Category.DUPLICATES,
    ErrorType.CONFLICTING_UNIQUE_VALUE: Category.DUPLICATES,
    ErrorType.MISSING_SCOPES: Category.PERMISSIONS,
    ErrorType.INVALID_TOKEN: Category.PERMISSIONS,
    ErrorType.ASSOCIATED_RECORD_NOT_FOUND: Category.ASSOCIATIONS,
    ErrorType.INVALID_ASSOCIATION: Category.ASSOCIATIONS,
    ErrorType.UNKNOWN_ERROR: Category.OTHER,
}

# One line on how to fix each error type, for the summary cards.
HOW_TO_FIX: dict[ErrorType, str] = {
    ErrorType.MALFORMED_ROW: "Fix the row's quoting or column count in the source file.",
    ErrorType.MISSING_ID_VALUE: "Give the row a value in the id column; rows without one cannot be upserted.",
    ErrorType.INVALID_TIMESTAMP: "Use epoch milliseconds or ISO-8601 (2024-05-01T10:00:00Z) for datetime columns.",
    ErrorType.INVALID_NUMBER: "Use a plain number (digits, optional sign and decimal point) without units.",
    ErrorType.VALUE_TOO_LONG: "Shorten the value to at most 65,536 characters.",
    ErrorType.PROPERTY_DOESNT_EXIST: "Create the property in HubSpot or map the column elsewhere (--column SRC=PROP).",
    ErrorType.ID_PROPERTY_NOT_UNIQUE: "Use a property with hasUniqueValue=true as --id-property.",
    ErrorType.TYPE_MISMATCH: "Convert the column to the property's type, or map it to a property of the right type.",
    ErrorType.INVALID_PROPERTY_VALUE: "Correct the value to what the property accepts.",
    ErrorType.MISSING_REQUIRED_PROPERTY: "Fill the required property (for calls: hs_timestamp) for new records.",
    ErrorType.INVALID_EMAIL_ADDRESS: "Correct the email address.",
    ErrorType.INVALID_OWNER_ID: "Use an owner's id or e-mail (bulkload properties lists the owners' property; "
    "owners are under Settings > Users).",
    ErrorType.VALIDATION_RULE: "A portal validation rule refused the record: fill what the rule asks for, or change "
    "the rule in HubSpot, then retry.",
    ErrorType.READ_ONLY_VALUE: "HubSpot calculates this property: drop the column (--column SRC=).",
    ErrorType.INVALID_ENUM_PROPERTY: "Use one of the property's internal option values, or add the option in HubSpot.",
    ErrorType.AMBIGUOUS_ENUMERATION_OPTION: "Two options share this label: use the option's internal value "
    "(bulkload properties OBJECT lists them).",
    ErrorType.DUPLICATE_ID_IN_SOURCE: "Earlier rows with the same id were skipped; the last row in the file was sent.",
    ErrorType.CONFLICTING_UNIQUE_VALUE: "Another record already holds this unique value; change or clear it.",
    ErrorType.MISSING_SCOPES: "Grant the private app the crm.objects.contacts.write scope.",
    ErrorType.INVALID_TOKEN: "Check HUBSPOT_ACCESS_TOKEN or --token-file.",
    ErrorType.ASSOCIATED_RECORD_NOT_FOUND: "Create the record (e.g. the contact) or correct the value, then "
    "`bulkload retry JOB` looks it up again.",
    ErrorType.INVALID_ASSOCIATION: "Check the associated record ids and that the two objects can be associated, then "
    "`bulkload retry JOB`.",
    ErrorType.UNKNOWN_ERROR: "Read the error message; retry with `bulkload retry` once fixed.",
}


def category_of(error_type: str) -> Category:
    try:
        return CATEGORY_OF[ErrorType(error_type)]
    except ValueError:
        return Category.OTHER


_FIX_BY_TYPE: dict[str, str] = {t.value: fix for t, fix in HOW_TO_FIX.items()}


def how_to_fix(error_type: str, job_id: str | None = None) -> str:
    """The taxonomy's one line; types newer than the taxonomy get UNKNOWN_ERROR's. With
    `job_id`, the command it names is the one to paste."""
    text = _FIX_BY_TYPE.get(error_type) or _FIX_BY_TYPE[ErrorType.UNKNOWN_ERROR.value]
    return text.replace("`bulkload retry JOB`", f"`bulkload retry {job_id}`") if job_id else text
