#!/usr/bin/env python3
"""Copies the OCA JSON schemas this crate validates and generates the typed messages.

Run from the crate directory with the workspace venv:

    ../../.venv/bin/python tools/gen.py

It writes schemas/v16/*.json, schemas/v201/*.json, src/schema/table.rs, src/v16.rs
and src/v201.rs. The schemas are facts (the protocol's own definition), so the Rust
types are derived from them instead of being typed by hand: a hand-written struct
drifts from the schema the validator enforces, a generated one cannot.
"""

import json
import keyword
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CRATE = os.path.dirname(HERE)
PKG = os.path.join(CRATE, "..", "..", ".venv", "lib", "python3.11", "site-packages", "ocpp")

V16_ACTIONS = [
    # Charge point initiated.
    # MeterValues before StopTransaction: its MeterValue is the wider of the two.
    "BootNotification", "Heartbeat", "StatusNotification", "Authorize", "StartTransaction",
    "MeterValues", "StopTransaction", "DataTransfer", "DiagnosticsStatusNotification",
    "FirmwareStatusNotification", "SecurityEventNotification",
    # Central system initiated.
    "RemoteStartTransaction", "RemoteStopTransaction", "ChangeAvailability", "Reset",
    "UnlockConnector", "GetConfiguration", "ChangeConfiguration", "TriggerMessage", "ClearCache",
    "ReserveNow", "CancelReservation",
]

V201_ACTIONS = [
    # Charging station initiated.
    "BootNotification", "Heartbeat", "StatusNotification", "Authorize", "TransactionEvent",
    "MeterValues", "NotifyEvent", "SecurityEventNotification", "NotifyReport", "DataTransfer",
    "FirmwareStatusNotification", "LogStatusNotification", "ReservationStatusUpdate",
    # CSMS initiated.
    "RequestStartTransaction", "RequestStopTransaction", "ChangeAvailability", "Reset",
    "UnlockConnector", "GetVariables", "SetVariables", "GetBaseReport", "TriggerMessage",
    "ClearCache", "ReserveNow", "CancelReservation",
]

# OCPP 1.6 schemas inline every nested type; the spec (section 7) names them. The key is
# the property name, or "Top.property" where the same property name means different types.
V16_NAMES = {
    "idTagInfo": "IdTagInfo",
    "IdTagInfo.status": "AuthorizationStatus",
    "meterValue": "MeterValue",
    "transactionData": "MeterValue",
    "sampledValue": "SampledValue",
    "context": "ReadingContext",
    "format": "ValueFormat",
    "measurand": "Measurand",
    "phase": "Phase",
    "location": "Location",
    "unit": "UnitOfMeasure",
    "errorCode": "ChargePointErrorCode",
    "reason": "Reason",
    "configurationKey": "KeyValue",
    "requestedMessage": "MessageTrigger",
    "chargingProfile": "ChargingProfile",
    "chargingSchedule": "ChargingSchedule",
    "chargingSchedulePeriod": "ChargingSchedulePeriod",
    "chargingProfilePurpose": "ChargingProfilePurposeType",
    "chargingProfileKind": "ChargingProfileKindType",
    "recurrencyKind": "RecurrencyKindType",
    "chargingRateUnit": "ChargingRateUnitType",
    "ChangeAvailabilityRequest.type": "AvailabilityType",
    "ResetRequest.type": "ResetType",
    "BootNotificationResponse.status": "RegistrationStatus",
    "StatusNotificationRequest.status": "ChargePointStatus",
    "ChangeAvailabilityResponse.status": "AvailabilityStatus",
    "ResetResponse.status": "ResetStatus",
    "RemoteStartTransactionResponse.status": "RemoteStartStopStatus",
    "RemoteStopTransactionResponse.status": "RemoteStartStopStatus",
    "UnlockConnectorResponse.status": "UnlockStatus",
    "ChangeConfigurationResponse.status": "ConfigurationStatus",
    "TriggerMessageResponse.status": "TriggerMessageStatus",
    "ClearCacheResponse.status": "ClearCacheStatus",
    "ReserveNowResponse.status": "ReservationStatus",
    "CancelReservationResponse.status": "CancelReservationStatus",
    "DataTransferResponse.status": "DataTransferStatus",
    "DiagnosticsStatusNotificationRequest.status": "DiagnosticsStatus",
    "FirmwareStatusNotificationRequest.status": "FirmwareStatus",
}

# Energy register readings in Wh outgrow 32 bits on a busy DC charger's lifetime; every
# other OCPP integer is an id, a count or a duration, 32-bit in the specification.
WIDE_INTEGERS = {"meterStart", "meterStop"}

IGNORED_KEYS = {"description", "javaType", "comment", "$id", "$schema", "title", "default"}


def canonical(schema):
    """The schema without annotations, to check two same-named types really agree."""
    if isinstance(schema, dict):
        return {k: canonical(v) for k, v in schema.items() if k not in IGNORED_KEYS}
    if isinstance(schema, list):
        return [canonical(v) for v in schema]
    return schema


def subsumes(old, new):
    """Whether a type generated from `old` can carry every value `new` allows.

    The 1.6 schemas repeat MeterValue in MeterValues and StopTransaction with small
    differences ("Hertz" only in the former, minItems only in the former); one Rust type
    serves both, and the validator still applies each message's own schema.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        keys = (set(old) | set(new)) - {"minItems", "maxItems"}
        for k in keys:
            if k not in old or k not in new:
                return False
            if k == "enum":
                if not set(new[k]) <= set(old[k]):
                    return False
            elif not subsumes(old[k], new[k]):
                return False
        return True
    return old == new


def snake(name):
    out = []
    for i, c in enumerate(name):
        if c.isupper():
            prev_lower = i > 0 and (name[i - 1].islower() or name[i - 1].isdigit())
            next_lower = i + 1 < len(name) and name[i + 1].islower()
            prev_upper = i > 0 and name[i - 1].isupper()
            if i > 0 and (prev_lower or (prev_upper and next_lower)):
                out.append("_")
            out.append(c.lower())
        else:
            out.append(c)
    return "".join(out)


def serde_camel(snake_name):
    """What `#[serde(rename_all = "camelCase")]` makes of a field name."""
    parts = snake_name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


RUST_KEYWORDS = set(
    "as break const continue crate else enum extern false fn for if impl in let loop match mod "
    "move mut pub ref return self static struct super trait true type unsafe use where while "
    "async await dyn abstract become box do final macro override priv typeof unsized virtual "
    "yield try gen".split()
)


def field_ident(prop):
    s = snake(prop)
    return ("r#" + s) if s in RUST_KEYWORDS else s


def variant_ident(wire):
    parts = [p for p in "".join(c if c.isalnum() else " " for c in wire).split() if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts)
    # Clippy's upper_case_acronyms flags a name that is all capitals ("RFID", "ISO14443").
    if name.upper() == name and any(c.isalpha() for c in name) and len(name) > 1:
        name = name[:1] + name[1:].lower()
    if name[:1].isdigit():
        name = "V" + name
    return name


class Gen:
    def __init__(self, version):
        self.version = version
        self.types = {}  # name -> canonical schema
        self.order = []  # names in emission order
        self.code = {}  # name -> rust source

    def define(self, name, schema, emit):
        c = canonical(schema)
        if name in self.types:
            if not subsumes(self.types[name], c):
                sys.exit(f"{self.version}: type {name} defined twice with different shapes")
            return
        self.types[name] = c
        self.order.append(name)
        self.code[name] = None
        self.code[name] = emit()

    def rust_type(self, schema, name_hint, defs):
        """Rust type of a property schema; returns (type, is_timestamp)."""
        if "$ref" in schema:
            ref = schema["$ref"]
            assert ref.startswith("#/definitions/"), ref
            name = ref[len("#/definitions/"):]
            target = defs[name]
            if "enum" in target:
                self.define(name, target, lambda: self.emit_enum(name, target))
                return name, False
            if target.get("type") == "object":
                self.define(name, target, lambda: self.emit_struct(name, target, defs, name))
                return name, False
            return self.rust_type(target, name, defs)
        t = schema.get("type")
        if "enum" in schema:
            name = name_hint()
            self.define(name, schema, lambda: self.emit_enum(name, schema))
            return name, False
        if t == "string":
            if schema.get("format") == "date-time":
                return "DateTime<Utc>", True
            return "String", False
        if t == "integer":
            return "i32", False
        if t == "number":
            return "f64", False
        if t == "boolean":
            return "bool", False
        if t == "array":
            inner, ts = self.rust_type(schema["items"], name_hint, defs)
            assert not ts, "arrays of timestamps are not generated"
            return f"Vec<{inner}>", False
        if t == "object":
            name = name_hint()
            self.define(name, schema, lambda: self.emit_struct(name, schema, defs, name))
            return name, False
        if t is None:
            return "serde_json::Value", False
        sys.exit(f"unsupported schema {schema}")

    def emit_enum(self, name, schema):
        lines = [
            "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]",
            f"pub enum {name} {{",
        ]
        arms = []
        seen = set()
        for wire in schema["enum"]:
            v = variant_ident(wire)
            assert v not in seen, (name, v)
            seen.add(v)
            if v != wire:
                lines.append(f'    #[serde(rename = "{wire}")]')
            lines.append(f"    {v},")
            arms.append(f'            Self::{v} => "{wire}",')
        lines.append("}")
        lines.append("")
        lines.append(f"impl {name} {{")
        lines.append("    /// The value as spelled on the wire.")
        lines.append("    pub fn as_str(self) -> &'static str {")
        lines.append("        match self {")
        lines.extend(arms)
        lines.append("        }")
        lines.append("    }")
        lines.append("}")
        return "\n".join(lines)

    def emit_struct(self, name, schema, defs, top):
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        body = []
        for prop, ps in props.items():
            ident = field_ident(prop)
            if self.version == "v16":
                def hint(prop=prop):
                    key = f"{top}.{prop}"
                    if key in V16_NAMES:
                        return V16_NAMES[key]
                    if f"{name}.{prop}" in V16_NAMES:
                        return V16_NAMES[f"{name}.{prop}"]
                    if prop in V16_NAMES:
                        return V16_NAMES[prop]
                    sys.exit(f"v16: no spec name for {top}.{prop}")
            else:
                def hint(prop=prop):
                    sys.exit(f"v201: inline type at {name}.{prop}")
            ty, ts = self.rust_type(ps, hint, defs)
            if ty == "i32" and prop in WIDE_INTEGERS:
                ty = "i64"
            attrs = []
            plain = ident.removeprefix("r#")
            if serde_camel(plain) != prop:
                attrs.append(f'rename = "{prop}"')
            if prop in required:
                if ts:
                    attrs.append('with = "crate::time::utc"')
                full = ty
            else:
                if ts:
                    attrs.append('default, with = "crate::time::utc_opt"')
                attrs.append('skip_serializing_if = "Option::is_none"')
                full = f"Option<{ty}>"
            for a in attrs:
                body.append(f"    #[serde({a})]")
            body.append(f"    pub {ident}: {full},")
        if schema.get("additionalProperties", True) is not False:
            body.append("    /// Vendor properties: this type is open to extension in the schema.")
            body.append("    #[serde(flatten)]")
            body.append("    pub extra: serde_json::Map<String, serde_json::Value>,")
        lines = [
            "#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]",
            '#[serde(rename_all = "camelCase")]',
            f"pub struct {name} {{",
            *body,
            "}",
        ]
        return "\n".join(lines)

    def render(self, header):
        parts = [header]
        for name in self.order:
            parts.append(self.code[name])
        return "\n\n".join(parts) + "\n"


def load(path):
    with open(path, encoding="utf-8-sig") as f:
        return json.load(f)


def schema_files(version, action):
    if version == "v16":
        return [(f"{action}.json", f"{action}Request"), (f"{action}Response.json", f"{action}Response")]
    return [(f"{action}Request.json", f"{action}Request"), (f"{action}Response.json", f"{action}Response")]


HEADER = """// @generated by tools/gen.py from the OCA JSON schemas in schemas/{v}; do not edit by hand.
//! Typed OCPP {pretty} messages: one `{{Action}}Request` / `{{Action}}Response` pair per action
//! this crate validates, with nested types named as {names}.
//!
//! The structs do not reject unknown fields: `schema::validate` is the gate, these are
//! the shape the rest of the system reads. Timestamps accept any RFC 3339 offset and,
//! leniently, none (read as UTC).

use chrono::{{DateTime, Utc}};
use serde::{{Deserialize, Serialize}};"""


def main():
    table = [
        "// @generated by tools/gen.py; do not edit by hand.",
        "//! Embedded schemas and action names, per version.",
        "",
    ]
    for version, actions, pretty, names in [
        ("v16", V16_ACTIONS, "1.6", "in the OCPP 1.6 specification, section 7"),
        ("v201", V201_ACTIONS, "2.0.1", "the schemas' own definitions"),
    ]:
        src_dir = os.path.join(PKG, version, "schemas")
        dst_dir = os.path.join(CRATE, "schemas", version)
        if os.path.isdir(dst_dir):
            shutil.rmtree(dst_dir)
        os.makedirs(dst_dir)
        gen = Gen(version)
        entries = []
        for action in actions:
            pair = []
            for fname, top in schema_files(version, action):
                shutil.copy(os.path.join(src_dir, fname), os.path.join(dst_dir, fname))
                schema = load(os.path.join(src_dir, fname))
                defs = schema.get("definitions", {})
                gen.define(top, schema, lambda top=top, schema=schema, defs=defs: gen.emit_struct(top, schema, defs, top))
                pair.append(f'include_str!("../../schemas/{version}/{fname}")')
            entries.append(f'    ("{action}", {pair[0]}, {pair[1]}),')
        with open(os.path.join(CRATE, "src", f"{version}.rs"), "w") as f:
            f.write(gen.render(HEADER.format(v=version, pretty=pretty, names=names)))

        all_actions = sorted(
            {
                (n[: -len(".json")] if version == "v16" else n[: -len("Request.json")])
                for n in os.listdir(src_dir)
                if n.endswith(".json") and not n.endswith("Response.json")
            }
        )
        up = version.upper()
        table.append(f"/// OCPP {pretty} actions with an embedded schema: (action, request, response).")
        table.append(f"pub(crate) static {up}_SCHEMAS: &[(&str, &str, &str)] = &[")
        table.extend(entries)
        table.append("];")
        table.append("")
        table.append(f"/// Every OCPP {pretty} action the OCA publishes a schema for, sorted.")
        table.append(f"pub(crate) static {up}_ACTIONS: &[&str] = &[")
        table.extend(f'    "{a}",' for a in all_actions)
        table.append("];")
        table.append("")
    with open(os.path.join(CRATE, "src", "schema", "table.rs"), "w") as f:
        f.write("\n".join(table))
    generated = [os.path.join(CRATE, "src", p) for p in ("v16.rs", "v201.rs", "schema/table.rs")]
    subprocess.run(["rustfmt", "--edition", "2024", *generated], check=True)


if __name__ == "__main__":
    main()
