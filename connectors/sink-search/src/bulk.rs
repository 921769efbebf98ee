//! The `_bulk` protocol: actions encoded as NDJSON lines, split into requests by count and bytes,
//! and each item's result classified as done, worth retrying, or rejected for good.
//!
//! Every action carries `version_type=external_gte` with the commit LSN of the change's
//! transaction as `version`, so the server keeps a document only if its version is at least the
//! stored one: a redelivered or reordered change of an older transaction never overwrites a
//! newer one. The commit LSN (not the change's own LSN) is what orders a row's versions across
//! a snapshot: a transaction that wrote a row before the snapshot's position but committed after
//! it is streamed, and its commit LSN is above the snapshot's. Row locks serialise writers of one
//! row, so commit order is change order per row; changes of one row inside one transaction share
//! a version, and `_gte` lets the later one win (only the last action per document of a request
//! is sent, see [`last_per_document`]). No `_type` is sent (removed in Elasticsearch 7, absent
//! from OpenSearch).

use serde::Serialize;
use serde_json::Value as Json;

/// One `_bulk` action: index (create or replace) a document, or delete one.
#[derive(Clone, Debug, PartialEq)]
pub struct Action {
    pub index: String,
    pub id: String,
    /// The external version: the commit LSN of the change's transaction.
    pub version: u64,
    /// The document to index; `None` deletes.
    pub document: Option<Json>,
    /// The batch event this action comes from (for dead letters).
    pub event: usize,
}

#[derive(Serialize)]
struct Meta<'a> {
    #[serde(rename = "_index")]
    index: &'a str,
    #[serde(rename = "_id")]
    id: &'a str,
    version: u64,
    version_type: &'static str,
}

impl Action {
    /// The action's NDJSON lines (metadata, then the document for an index action), each
    /// ending in `\n`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let meta = Meta {
            index: &self.index,
            id: &self.id,
            version: self.version,
            version_type: "external_gte",
        };
        let verb = if self.document.is_some() {
            "{\"index\":"
        } else {
            "{\"delete\":"
        };
        out.extend_from_slice(verb.as_bytes());
        // Serializing plain strings and integers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &meta);
        out.extend_from_slice(b"}\n");
        if let Some(document) = &self.document {
            let _ = serde_json::to_writer(&mut *out, document);
            out.push(b'\n');
        }
    }
}

/// Split encoded actions (given by their sizes in bytes) into request bodies of at most
/// `max_actions` actions and, unless a single action is larger, at most `max_bytes` bytes.
/// Returns index ranges of `sizes`.
pub fn split_requests(
    sizes: &[usize],
    max_actions: usize,
    max_bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut requests = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, size) in sizes.iter().enumerate() {
        let full = i - start >= max_actions || (i > start && bytes + size > max_bytes);
        if full {
            requests.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        requests.push(start..sizes.len());
    }
    requests
}

/// The positions in `actions` of the last action per document (index and id), in order: an
/// earlier action on the same document in the same request is superseded, and sending it could
/// let a retried older item land after the newer one under the same version.
pub fn last_per_document(actions: &[Action]) -> Vec<usize> {
    let mut last = std::collections::HashMap::with_capacity(actions.len());
    for (i, action) in actions.iter().enumerate() {
        last.insert((action.index.as_str(), action.id.as_str()), i);
    }
    (0..actions.len())
        .filter(|i| last.get(&(actions[*i].index.as_str(), actions[*i].id.as_str())) == Some(i))
        .collect()
}

/// What one item's result means for delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Stored, or a newer version is already there (409 on an external version), or a delete
    /// found nothing to delete (404): the change is reflected.
    Done,
    /// Refused for now (429 back-pressure, 5xx): send the item again.
    Retry(String),
    /// Rejected for good (mapping errors and other 4xx): dead-letter it with the reason.
    Reject(String),
}

/// Classify one entry of a `_bulk` response's `items` (`{"index": {...}}` or
/// `{"delete": {...}}`).
pub fn classify_item(item: &Json) -> ItemOutcome {
    let Some(result) = item.as_object().and_then(|o| o.values().next()) else {
        return ItemOutcome::Retry(format!("malformed bulk item: {item}"));
    };
    let status = result.get("status").and_then(Json::as_u64).unwrap_or(0);
    let reason = || error_reason(result.get("error"));
    match status {
        200..=299 | 404 | 409 => ItemOutcome::Done,
        429 | 500..=599 => ItemOutcome::Retry(format!("status {status}: {}", reason())),
        0 => ItemOutcome::Retry(format!("bulk item without a status: {item}")),
        _ => ItemOutcome::Reject(format!("status {status}: {}", reason())),
    }
}

/// `type: reason (caused by: type: reason)` of a server error object.
pub fn error_reason(error: Option<&Json>) -> String {
    let Some(error) = error else {
        return "no reason given".into();
    };
    if let Some(text) = error.as_str() {
        return text.to_owned();
    }
    let part = |e: &Json| {
        let kind = e.get("type").and_then(Json::as_str).unwrap_or("error");
        let reason = e.get("reason").and_then(Json::as_str).unwrap_or("");
        format!("{kind}: {reason}")
    };
    match error.get("caused_by") {
        Some(cause) => format!("{} (caused by {})", part(error), part(cause)),
        None => part(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn action(id: &str, document: Option<Json>) -> Action {
        Action {
            index: "shop.public.orders".into(),
            id: id.into(),
            version: 0x16_B374_D848,
            document,
            event: 0,
        }
    }

    #[test]
    fn index_and_delete_actions_are_ndjson_with_external_gte_versions() {
        let mut out = Vec::new();
        action("7", Some(json!({"id": 7, "note": "a\nb"}))).encode(&mut out);
        action("[1,\"x\"]", None).encode(&mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<Json> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                json!({"index": {"_index": "shop.public.orders", "_id": "7",
                        "version": 0x16_B374_D848u64, "version_type": "external_gte"}}),
                json!({"id": 7, "note": "a\nb"}),
                json!({"delete": {"_index": "shop.public.orders", "_id": "[1,\"x\"]",
                        "version": 0x16_B374_D848u64, "version_type": "external_gte"}}),
            ]
        );
        assert!(text.ends_with('\n'), "a bulk body ends with a newline");
    }

    #[test]
    fn large_batches_split_by_count_and_bytes() {
        let sizes = [10, 10, 10, 10, 10];
        assert_eq!(split_requests(&sizes, 2, 1000), [0..2, 2..4, 4..5]);
        assert_eq!(split_requests(&sizes, 100, 25), [0..2, 2..4, 4..5]);
        assert_eq!(split_requests(&sizes, 100, 1000), vec![0..5]);
        // An action larger than the byte limit still goes, alone.
        assert_eq!(split_requests(&[5, 50, 5], 100, 20), [0..1, 1..2, 2..3]);
        assert!(split_requests(&[], 10, 10).is_empty());
    }

    #[test]
    fn item_results_are_classified_by_status() {
        let item = |status: u64, error: Json| json!({"index": {"status": status, "error": error}});
        assert_eq!(classify_item(&item(201, Json::Null)), ItemOutcome::Done);
        assert_eq!(
            classify_item(&json!({"delete": {"status": 404, "result": "not_found"}})),
            ItemOutcome::Done
        );
        let conflict = json!({"type": "version_conflict_engine_exception", "reason": "newer"});
        assert_eq!(classify_item(&item(409, conflict)), ItemOutcome::Done);
        let busy = json!({"type": "es_rejected_execution_exception", "reason": "queue full"});
        assert_eq!(
            classify_item(&item(429, busy)),
            ItemOutcome::Retry("status 429: es_rejected_execution_exception: queue full".into())
        );
        assert!(matches!(
            classify_item(&item(503, Json::Null)),
            ItemOutcome::Retry(_)
        ));
        let mapping = json!({"type": "mapper_parsing_exception",
            "reason": "failed to parse field [qty] of type [long]",
            "caused_by": {"type": "illegal_argument_exception", "reason": "For input string"}});
        assert_eq!(
            classify_item(&item(400, mapping)),
            ItemOutcome::Reject(
                "status 400: mapper_parsing_exception: failed to parse field [qty] of type \
                 [long] (caused by illegal_argument_exception: For input string)"
                    .into()
            )
        );
    }

    #[test]
    fn only_the_last_action_per_document_of_a_request_is_sent() {
        let at = |index: &str, id: &str, event| Action {
            index: index.into(),
            id: id.into(),
            version: 7,
            document: None,
            event,
        };
        let actions = [
            at("a", "1", 0),
            at("a", "2", 1),
            at("b", "1", 2),
            at("a", "1", 3),
        ];
        assert_eq!(last_per_document(&actions), vec![1, 2, 3]);
    }
}
