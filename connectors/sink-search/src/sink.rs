//! Writes a batch as `_bulk` actions and returns only once the server confirmed every item, or
//! the item was set aside as a dead letter (durably).
//!
//! Events become actions in batch order: insert, update and snapshot read index the row's
//! document, delete deletes it, an update that changes the key deletes the old document too,
//! and a truncate first sends everything before it and then clears the table's index. Items
//! the server refuses for now (429, 5xx) are re-sent alone with backoff; items it rejects for
//! good go to the dead-letter destination with its reason. Success of a bulk item means the
//! server wrote it to its translog (fsync'd per request by default), so it survives a crash;
//! no refresh is needed for durability, only for visibility.

use std::collections::HashMap;

use serde_json::Value as Json;
use sluice_api::{
    Backoff, Batch, ChangeEvent, DeadLetter, DeadLetterQueue, Op, Sink, SinkError, TableSchema,
};

use crate::bulk::{classify_item, last_per_document, split_requests, Action, ItemOutcome};
use crate::client::SearchClient;
use crate::config::SearchSinkConfig;
use crate::encode::{create_index_body, document, resolve_unchanged_toast};
use crate::error::SearchSinkError;
use crate::naming::{document_id, index_name};

/// The search sink.
pub struct SearchSink {
    /// The sink's configured name, recorded in dead letters.
    name: String,
    /// First part of derived index names.
    prefix: String,
    config: SearchSinkConfig,
    client: SearchClient,
    dead_letters: Option<Box<dyn DeadLetterQueue>>,
    /// Letters made durable so far.
    dead_letter_count: u64,
    /// `schema.table` -> its index, for indexes known to exist.
    indexes: HashMap<String, String>,
}

/// A change set aside before reaching the server (no key, unavailable values), or after.
struct Rejection {
    event: usize,
    key: Option<String>,
    document: Option<Json>,
    reason: String,
}

impl SearchSink {
    /// Build the client and open the dead-letter destination. `pipeline` is the default index
    /// prefix. No request is sent until the first write.
    pub async fn new(
        config: &SearchSinkConfig,
        name: &str,
        pipeline: &str,
    ) -> Result<SearchSink, SinkError> {
        let client = SearchClient::new(config)?;
        let dead_letters = match &config.dead_letter {
            Some(dl) => Some(dl.open().await?),
            None => None,
        };
        Ok(SearchSink {
            name: name.to_owned(),
            prefix: config
                .index_prefix
                .clone()
                .unwrap_or_else(|| pipeline.to_owned()),
            config: config.clone(),
            client,
            dead_letters,
            dead_letter_count: 0,
            indexes: HashMap::new(),
        })
    }

    /// The index of `table`, created with its derived mapping on first use.
    async fn ensure_index(&mut self, table: &TableSchema) -> Result<String, SearchSinkError> {
        let qualified = table.qualified_name();
        if let Some(index) = self.indexes.get(&qualified) {
            return Ok(index.clone());
        }
        let index = index_name(&self.prefix, table, &self.config.index_names);
        if !self.client.index_exists(&index).await? {
            let body = create_index_body(
                table,
                self.config.index_settings.as_ref(),
                self.config.mappings.get(&qualified),
            );
            self.client.create_index(&index, &body).await?;
            tracing::info!(sink = %self.name, %index, table = %qualified, "created index");
        }
        self.indexes.insert(qualified, index.clone());
        Ok(index)
    }

    /// A truncate: delete every document of `index` at the truncate's version. Documents of
    /// later transactions (already there when a restart redelivers the truncate) stay, and
    /// their redelivery after it is not refused: a `_delete_by_query` would raise each deleted
    /// document's version above its own and make the server refuse the same change again.
    async fn clear_index(
        &mut self,
        index: &str,
        version: u64,
        position: usize,
        rejected: &mut Vec<Rejection>,
    ) -> Result<(), SearchSinkError> {
        let page_size = self.config.max_bulk_actions;
        let Some((mut scroll, mut ids)) = self.client.first_ids(index, page_size).await? else {
            return Ok(());
        };
        while !ids.is_empty() {
            let deletes: Vec<Action> = ids
                .drain(..)
                .map(|id| Action {
                    index: index.to_owned(),
                    id,
                    version,
                    document: None,
                    event: position,
                })
                .collect();
            self.send_actions(&deletes, rejected).await?;
            (scroll, ids) = self.client.next_ids(&scroll).await?;
        }
        self.client.close_scroll(&scroll).await;
        Ok(())
    }

    /// The actions of one row event (none for a rejection, pushed to `rejected`).
    async fn plan_event(
        &mut self,
        position: usize,
        event: &ChangeEvent,
        actions: &mut Vec<Action>,
        rejected: &mut Vec<Rejection>,
    ) -> Result<(), SearchSinkError> {
        let Some(table) = event.table.as_deref() else {
            return Ok(());
        };
        let version = event.position.commit_lsn.as_u64();
        let mut reject = |key: Option<String>, document: Option<Json>, reason: String| {
            rejected.push(Rejection {
                event: position,
                key,
                document,
                reason,
            })
        };
        match event.op {
            Op::Delete => {
                let Some(id) = event.before.as_ref().and_then(|b| document_id(table, b)) else {
                    reject(None, None, no_key_reason(table));
                    return Ok(());
                };
                let index = self.ensure_index(table).await?;
                actions.push(Action {
                    index,
                    id,
                    version,
                    document: None,
                    event: position,
                });
            }
            Op::Create | Op::Update | Op::Read => {
                let Some(after) = &event.after else {
                    return Ok(());
                };
                let mut after = after.clone();
                let missing = resolve_unchanged_toast(table, &mut after, event.before.as_ref());
                let id = document_id(table, &after);
                if !missing.is_empty() {
                    let reason = format!(
                        "unchanged TOAST value(s) of {} not sent by the server; set REPLICA \
                         IDENTITY FULL on {} so updates carry them",
                        missing.join(", "),
                        table.qualified_name()
                    );
                    reject(id, Some(document(table, &after)), reason);
                    return Ok(());
                }
                let Some(id) = id else {
                    reject(None, Some(document(table, &after)), no_key_reason(table));
                    return Ok(());
                };
                let index = self.ensure_index(table).await?;
                let old_id = event.before.as_ref().and_then(|b| document_id(table, b));
                if let Some(old_id) = old_id.filter(|old| *old != id) {
                    actions.push(Action {
                        index: index.clone(),
                        id: old_id,
                        version,
                        document: None,
                        event: position,
                    });
                }
                actions.push(Action {
                    index,
                    id,
                    version,
                    document: Some(document(table, &after)),
                    event: position,
                });
            }
            Op::Truncate | Op::Message => {}
        }
        Ok(())
    }

    /// Send `actions` until every item is done or rejected; refused items are re-sent alone
    /// with backoff, at most `item_retry_attempts` times.
    async fn send_actions(
        &mut self,
        actions: &[Action],
        rejected: &mut Vec<Rejection>,
    ) -> Result<(), SearchSinkError> {
        if actions.is_empty() {
            return Ok(());
        }
        let encoded: Vec<Vec<u8>> = actions
            .iter()
            .map(|a| {
                let mut out = Vec::with_capacity(256);
                a.encode(&mut out);
                out
            })
            .collect();
        // Superseded actions on the same document are not sent (see `last_per_document`).
        let mut todo: Vec<usize> = last_per_document(actions);
        let (initial, max) = self.config.item_retry;
        let mut backoff = Backoff::new(initial, max);
        loop {
            let mut refused = Vec::new();
            let mut last_refusal = String::new();
            let sizes: Vec<usize> = todo.iter().map(|&i| encoded[i].len()).collect();
            let requests = split_requests(
                &sizes,
                self.config.max_bulk_actions,
                self.config.max_bulk_bytes,
            );
            for range in requests {
                let members = &todo[range];
                let size = members.iter().map(|&i| encoded[i].len()).sum();
                let mut body = Vec::with_capacity(size);
                for &i in members {
                    body.extend_from_slice(&encoded[i]);
                }
                match self.client.bulk(body, members.len()).await {
                    Ok(items) => {
                        for (&i, item) in members.iter().zip(&items) {
                            match classify_item(item) {
                                ItemOutcome::Done => {}
                                ItemOutcome::Retry(reason) => {
                                    refused.push(i);
                                    last_refusal = reason;
                                }
                                ItemOutcome::Reject(reason) => rejected.push(Rejection {
                                    event: actions[i].event,
                                    key: Some(actions[i].id.clone()),
                                    document: actions[i].document.clone(),
                                    reason,
                                }),
                            }
                        }
                    }
                    Err(e) if e.class() == sluice_api::ErrorClass::Transient => {
                        refused.extend_from_slice(members);
                        last_refusal = e.to_string();
                    }
                    Err(e) => return Err(e),
                }
            }
            if refused.is_empty() {
                return Ok(());
            }
            if backoff.attempt() >= self.config.item_retry_attempts {
                return Err(SearchSinkError::StillRefused {
                    count: refused.len(),
                    attempts: backoff.attempt() + 1,
                    last: last_refusal,
                });
            }
            let delay = backoff.next_delay();
            tracing::warn!(
                sink = %self.name, refused = refused.len(), attempt = backoff.attempt(),
                retry_in_ms = delay.as_millis() as u64, reason = %last_refusal,
                "search server refused documents for now, re-sending them"
            );
            tokio::time::sleep(delay).await;
            todo = refused;
        }
    }

    /// Make the rejections durable as dead letters; without a destination they stop the sink.
    async fn set_aside(
        &mut self,
        batch: &Batch,
        rejected: Vec<Rejection>,
    ) -> Result<(), SinkError> {
        if rejected.is_empty() {
            return Ok(());
        }
        let Some(queue) = self.dead_letters.as_mut() else {
            return Err(SearchSinkError::Rejected {
                count: rejected.len(),
                first: rejected[0].reason.clone(),
            }
            .into());
        };
        let letters: Vec<DeadLetter> = rejected
            .into_iter()
            .map(|r| {
                let event = &batch.events[r.event];
                DeadLetter {
                    sink: self.name.clone(),
                    table: event
                        .table
                        .as_ref()
                        .map_or_else(String::new, |t| t.qualified_name()),
                    key: r.key,
                    lsn: event.position.lsn.as_u64(),
                    op: event.op.as_str().to_owned(),
                    document: r.document,
                    reason: r.reason,
                }
            })
            .collect();
        tracing::warn!(
            sink = %self.name, count = letters.len(), first = %letters[0].reason,
            "documents rejected by the search server, written to the dead-letter destination"
        );
        queue.send(&letters).await?;
        self.dead_letter_count += letters.len() as u64;
        Ok(())
    }
}

fn no_key_reason(table: &TableSchema) -> String {
    format!(
        "{} has no primary key (or replica identity) value for this row: a document id cannot \
         be derived",
        table.qualified_name()
    )
}

#[async_trait::async_trait]
impl Sink for SearchSink {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut actions = Vec::new();
        let mut rejected = Vec::new();
        for (position, event) in batch.events.iter().enumerate() {
            if event.op == Op::Truncate {
                // Everything before the truncate lands first, then the index is cleared.
                self.send_actions(&actions, &mut rejected).await?;
                actions.clear();
                if let Some(table) = event.table.as_deref() {
                    let index = index_name(&self.prefix, table, &self.config.index_names);
                    let version = event.position.commit_lsn.as_u64();
                    self.clear_index(&index, version, position, &mut rejected)
                        .await?;
                }
                continue;
            }
            self.plan_event(position, event, &mut actions, &mut rejected)
                .await?;
        }
        self.send_actions(&actions, &mut rejected).await?;
        self.set_aside(batch, rejected).await
    }

    fn dead_letter_count(&self) -> u64 {
        self.dead_letter_count
    }
}
