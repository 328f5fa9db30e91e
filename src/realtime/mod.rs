//! Real time: the event bus ([`bus`]) that tells every node "session S has events up to
//! seq N", and the per-session feeds ([`feed`]) that turn those wake-ups into ordered event
//! batches for SSE subscribers, reading the table once per node per wake-up.

pub mod bus;
pub mod feed;
