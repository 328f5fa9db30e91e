//! Real time: the event bus ([`bus`]) that tells every node "session S has events up to
//! seq N", the per-session feeds ([`feed`]) that turn those wake-ups into ordered event
//! batches for SSE subscribers, reading the table once per node per wake-up, and the SSE
//! plumbing ([`sse`]) that streams them to clients with heartbeats and re-authorization, and
//! the desktop relay ([`relay`]): RFB between a viewer's WebSocket and a session's desktop.

pub mod bus;
pub mod feed;
pub mod relay;
pub mod sse;
