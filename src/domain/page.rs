//! Cursor pagination: `?limit=` (1–200, default 50) and an opaque `?cursor=`; lists return
//! `{ items, next_cursor }`. A cursor is base64url of `v1:<uuid>`: the id of the last item
//! returned. Ids are UUIDv7, so id order is creation order and the cursor is stable under
//! concurrent inserts.

use base64::Engine;
use uuid::Uuid;

use crate::error::{AppError, FieldError, ProblemCode};

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page size.
pub const MAX_LIMIT: u32 = 200;

/// One page of results.
#[derive(Debug)]
pub struct Page<T> {
    /// The items, in list order.
    pub items: Vec<T>,
    /// Cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A validated page request.
#[derive(Clone, Copy, Debug)]
pub struct PageRequest {
    /// Items to return (1–200).
    pub limit: u32,
    /// Id of the last item already seen.
    pub after: Option<Uuid>,
}

impl PageRequest {
    /// Validates `limit` (default 50) and decodes `cursor`. Errors: 400 naming the parameter.
    pub fn new(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, AppError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(bad("limit", format!("must be between 1 and {MAX_LIMIT}")));
        }
        let after = match cursor {
            None | Some("") => None,
            Some(c) => Some(
                decode(c)
                    .ok_or_else(|| bad("cursor", "is not a cursor returned by this list".into()))?,
            ),
        };
        Ok(Self { limit, after })
    }

    /// Rows to fetch: one more than `limit`, to learn whether another page exists.
    pub fn fetch(&self) -> u64 {
        u64::from(self.limit) + 1
    }

    /// Cuts the over-fetched rows to a page; `id` gives each item's cursor key.
    pub fn finish<T>(&self, mut rows: Vec<T>, id: impl Fn(&T) -> Uuid) -> Page<T> {
        let more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| encode(id(r)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

fn bad(field: &str, message: String) -> AppError {
    AppError::BadRequest {
        code: ProblemCode::InvalidParameter,
        detail: format!("parameter `{field}` {message}"),
        errors: vec![FieldError::new(field, message)],
    }
}

/// Encodes a cursor.
pub fn encode(id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{id}"))
}

/// Decodes a cursor; `None` when it is not one of ours.
pub fn decode(cursor: &str) -> Option<Uuid> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let text = std::str::from_utf8(&raw).ok()?;
    Uuid::parse_str(text.strip_prefix("v1:")?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_junk() {
        let id = Uuid::now_v7();
        assert_eq!(decode(&encode(id)), Some(id));
        assert_eq!(decode("nope"), None);
        assert_eq!(
            decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("v2:x")),
            None
        );
    }

    #[test]
    fn limits_and_pages() {
        assert!(PageRequest::new(Some(0), None).is_err());
        assert!(PageRequest::new(Some(201), None).is_err());
        assert!(PageRequest::new(None, Some("garbage")).is_err());
        let req = PageRequest::new(Some(2), None).unwrap();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let page = req.finish(ids.clone(), |u| *u);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next_cursor.as_deref().and_then(decode), Some(ids[1]));
        let last = req.finish(ids[..2].to_vec(), |u| *u);
        assert!(last.next_cursor.is_none());
    }
}
