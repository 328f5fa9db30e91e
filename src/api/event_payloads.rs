//! The payloads the server itself writes into a session's event log, published as schemas so
//! SDKs can type `EventOut.payload` per `kind`: `status` (only the server writes it),
//! and the `action`, `result` and `screenshot` events of commands. Clients may append
//! `action`, `result` and `screenshot` events with payloads of their own, so these schemas
//! describe what the server writes, not every event of those kinds: the server's carry
//! `command_id`. No operation references them (`EventOut.payload` stays a free-form object:
//! typing it would narrow what `events.append` accepts), so poem-openapi would drop them;
//! [`register`] builds them and `api::spec` adds them to `components.schemas`.
//!
//! Fields the server writes as JSON `null` are `nullable` here, as they are on the wire.

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::Type,
};

use super::{
    command_result::CommandResult,
    commands::{CommandKindName, ResultStatus},
    sessions::SessionStatus,
};

/// The schemas [`register`] adds, by name.
pub const NAMES: &[&str] = &[
    "StatusEventPayload",
    "ActionEventPayload",
    "ResultEventPayload",
    "ScreenshotEventPayload",
];

/// Marks the schemas of this module in poem-openapi's registry (its name-clash check).
struct EventPayload;

/// One property: name, schema, required, description.
type Prop = (&'static str, MetaSchemaRef, bool, &'static str);

fn object(
    registry: &mut Registry,
    name: &'static str,
    description: &'static str,
    props: Vec<Prop>,
) {
    registry.create_schema::<EventPayload, _>(name.to_owned(), |_| MetaSchema {
        description: Some(description),
        required: props.iter().filter(|p| p.2).map(|p| p.0).collect(),
        properties: props
            .into_iter()
            .map(|(n, schema, _, d)| (n, described(schema, d)))
            .collect(),
        ..MetaSchema::new("object")
    });
}

/// `schema` inline, so that siblings can be added: a reference is wrapped in `allOf`
/// (OpenAPI 3.0 ignores the siblings of a `$ref`).
fn inline(schema: MetaSchemaRef) -> MetaSchema {
    match schema {
        MetaSchemaRef::Inline(s) => *s,
        r @ MetaSchemaRef::Reference(_) => MetaSchema {
            all_of: vec![r],
            ..MetaSchema::ANY
        },
    }
}

/// `schema` with a description.
fn described(schema: MetaSchemaRef, description: &'static str) -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(MetaSchema {
        description: Some(description),
        ..inline(schema)
    }))
}

/// `schema` or JSON `null`.
fn nullable(schema: MetaSchemaRef) -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(MetaSchema {
        nullable: true,
        ..inline(schema)
    }))
}

fn uuid() -> MetaSchemaRef {
    uuid::Uuid::schema_ref()
}

fn any() -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(MetaSchema::ANY))
}

/// Adds the [`NAMES`] schemas (and the enums they reference) to `registry`.
pub fn register(registry: &mut Registry) {
    SessionStatus::register(registry);
    CommandKindName::register(registry);
    ResultStatus::register(registry);
    CommandResult::register(registry);
    object(
        registry,
        "StatusEventPayload",
        "The payload of a `status` event (written by the server only): a lifecycle change.",
        vec![
            (
                "status",
                SessionStatus::schema_ref(),
                true,
                "The new status.",
            ),
            (
                "previous_status",
                nullable(SessionStatus::schema_ref()),
                true,
                "The status before; `null` on the first event (`pending`).",
            ),
            (
                "reason",
                nullable(String::schema_ref()),
                true,
                "Why (`stop_requested`, `idle_timeout`, an error…), or `null`.",
            ),
        ],
    );
    object(
        registry,
        "ActionEventPayload",
        "The payload of the `action` event the server writes when it accepts a command \
             (`commands.create`). Clients may append `action` events of their own shape.",
        vec![
            ("command_id", uuid(), true, "The command (`commands.get`)."),
            (
                "kind",
                CommandKindName::schema_ref(),
                true,
                "What it will do.",
            ),
            (
                "args",
                super::JsonObject::schema_ref(),
                true,
                "Its arguments, as sent.",
            ),
        ],
    );
    object(
        registry,
        "ResultEventPayload",
        "The payload of the `result` event the server writes when a command finishes \
             (`commands.complete` or the built-in executor). Clients may append `result` \
             events of their own shape.",
        vec![
            ("command_id", uuid(), true, "The command (`commands.get`)."),
            ("kind", CommandKindName::schema_ref(), true, "What it did."),
            ("status", ResultStatus::schema_ref(), true, "How it ended."),
            (
                "output",
                nullable(any()),
                true,
                "What an external executor reported, verbatim; `null` for the built-in executor.",
            ),
            (
                "result",
                // `anyOf`, not `allOf`: generators read `allOf` around a union with a
                // discriminator as inheritance and drop its `kind`.
                MetaSchemaRef::Inline(Box::new(MetaSchema {
                    any_of: vec![CommandResult::schema_ref()],
                    nullable: true,
                    ..MetaSchema::ANY
                })),
                true,
                "The built-in executor's typed outcome (as `CommandOut.result`); `null` for an external executor.",
            ),
            (
                "error",
                nullable(String::schema_ref()),
                true,
                "The error message when `failed`, else `null`.",
            ),
            (
                "error_code",
                nullable(String::schema_ref()),
                true,
                "Why it failed, as `CommandOut.error_code`, or `null`.",
            ),
        ],
    );
    object(
        registry,
        "ScreenshotEventPayload",
        "The payload of the `screenshot` event the built-in executor writes for a \
             `screenshot` command (beside its `result` event). Clients may append \
             `screenshot` events of their own shape.",
        vec![
            ("command_id", uuid(), true, "The command (`commands.get`)."),
            (
                "artifact_id",
                uuid(),
                true,
                "The stored PNG (`artifacts.get`, `artifacts.content`).",
            ),
            ("width", u32::schema_ref(), true, "Image width (pixels)."),
            ("height", u32::schema_ref(), true, "Image height (pixels)."),
            (
                "scale",
                f64::schema_ref(),
                true,
                "Image size ÷ desktop size (1.0 unless downscaled).",
            ),
            ("media_type", String::schema_ref(), true, "`image/png`."),
            ("bytes", u64::schema_ref(), true, "Image size (bytes)."),
        ],
    );
}
