//! The exactly-once writer: a transactional producer that commits the records of the change
//! stream together with the position they reach (a record in the offsets topic, inside the
//! same Kafka transaction), so a `read_committed` consumer sees each change once even when
//! sluice crashes and PostgreSQL sends the unconfirmed tail again.
//!
//! Transaction boundaries follow PostgreSQL's. A batch with a checkpoint completes the
//! transactions before it: their records are committed before `write` returns, so `Ok` means
//! durable for everything the checkpoint covers. Events after the checkpoint (the start of a
//! transaction the batch does not complete) and batches without a checkpoint go into a Kafka
//! transaction left open until the batch that completes their PostgreSQL transaction; such a
//! batch acknowledges no position, so nothing is confirmed to PostgreSQL before the commit.
//! The open transaction is bounded: past `transaction_max_events` events or half of
//! `transaction_timeout_ms` it is committed mid-way, with the exact event position reached.
//! Its records are kept (the bound limits the memory) so that a failed attempt can produce
//! them again into a new transaction.
//!
//! On start, and after any failure, the writer starts a new producer: `init_transactions`
//! fences older producers with the same transactional id and ends their open transaction,
//! then the latest committed position is read back from the offsets topic and redelivered
//! events at or before it are skipped. A producer fenced by a newer one stops with a fatal
//! error: two instances must not write the same stream.

use std::time::{Duration, Instant};

use rdkafka::admin::AdminClient;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use sluice_api::{Batch, Lsn};

use crate::client::{
    create_admin, prepare_offsets_topic, transactional_producer_config, LogContext,
};
use crate::config::{
    default_offsets_topic, default_transactional_id, ExactlyOnceConfig, KafkaSinkConfig,
};
use crate::encode::{governing_events, OutgoingRecord, OwnedRecord};
use crate::error::{is_fencing_code, KafkaSinkError};
use crate::offsets::{self, CommittedPosition};
use crate::position::{first_unwritten, EventPosition, PositionCounter};
use crate::produce::produce_all;

/// Longest wait for `init_transactions`, a commit or an abort.
const TRANSACTION_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The Kafka transaction currently open, with copies of what it holds from earlier batches.
#[derive(Default)]
struct OpenTransaction {
    started: Option<Instant>,
    /// Events whose records are in it.
    event_count: u64,
    /// Every record produced into it so far, with its event's position, to produce again if
    /// the transaction fails.
    records: Vec<(EventPosition, OwnedRecord)>,
}

/// Writes batches through Kafka transactions. See the module docs.
pub struct TransactionalWriter {
    config: KafkaSinkConfig,
    transactional_id: String,
    offsets_topic: String,
    pipeline: String,
    sink: String,
    offsets_key: String,
    max_events: u64,
    /// An open transaction older than this is committed at the end of the next write.
    max_open: Duration,
    transaction_timeout: Duration,
    admin: AdminClient<LogContext>,
    /// `None` until started, and again after a failure: the next write starts a new one.
    producer: Option<FutureProducer<LogContext>>,
    /// The last event whose records are committed or in the open transaction.
    written: Option<EventPosition>,
    counter: PositionCounter,
    open: OpenTransaction,
    /// Whether a transaction is begun on the current producer.
    in_transaction: bool,
    /// A newer producer fenced this one: every write fails, none starts a producer again
    /// (which would fence the newer one in turn).
    fenced: bool,
}

impl TransactionalWriter {
    pub fn new(
        config: &KafkaSinkConfig,
        eos: &ExactlyOnceConfig,
        pipeline: &str,
        sink: &str,
    ) -> Result<Self, KafkaSinkError> {
        Ok(TransactionalWriter {
            transactional_id: eos
                .transactional_id
                .clone()
                .unwrap_or_else(|| default_transactional_id(pipeline, sink)),
            offsets_topic: eos
                .offsets_topic
                .clone()
                .unwrap_or_else(|| default_offsets_topic(pipeline)),
            pipeline: pipeline.to_owned(),
            sink: sink.to_owned(),
            offsets_key: offsets::offsets_key(pipeline, sink),
            max_events: eos.max_events,
            max_open: eos.timeout / 2,
            transaction_timeout: eos.timeout,
            admin: create_admin(config)?,
            config: config.clone(),
            producer: None,
            written: None,
            counter: PositionCounter::default(),
            open: OpenTransaction::default(),
            in_transaction: false,
            fenced: false,
        })
    }

    /// Write `batch`, whose planned records are `records`. See the module docs for what `Ok`
    /// guarantees.
    pub async fn write(
        &mut self,
        batch: &Batch,
        records: &[OutgoingRecord<'_>],
    ) -> Result<(), KafkaSinkError> {
        if self.fenced {
            return Err(KafkaSinkError::Fenced {
                transactional_id: self.transactional_id.clone(),
            });
        }
        let result = self.try_write(batch, records).await;
        let result = result.map_err(|error| self.fenced_or(error));
        if let Err(error) = &result {
            self.fenced = matches!(error, KafkaSinkError::Fenced { .. });
            self.fail(error).await;
        }
        result
    }

    async fn try_write(
        &mut self,
        batch: &Batch,
        records: &[OutgoingRecord<'_>],
    ) -> Result<(), KafkaSinkError> {
        if self.producer.is_none() {
            self.start().await?;
        }
        if batch.events.is_empty() {
            return self.write_metadata_only(batch, records).await;
        }
        let mut counter = self.counter;
        let positions = counter.assign(&batch.events);
        let skip = first_unwritten(&positions, self.written);
        // Events before `head_end` belong to transactions the checkpoint completes.
        let head_end = match batch.checkpoint {
            Some(checkpoint) => positions.partition_point(|p| p.commit_lsn < checkpoint),
            None => 0,
        };
        let governing = governing_events(records, batch.events.len());
        let in_range = |from: usize, to: usize| {
            records
                .iter()
                .zip(&governing)
                .filter(move |(_, event)| (from..to).contains(*event))
                .map(|(record, event)| (positions[*event], record))
        };

        if let Some(checkpoint) = batch.checkpoint {
            let head: Vec<_> = in_range(skip, head_end).collect();
            if !head.is_empty() {
                self.produce(&head, false).await?;
            }
            if head_end > skip {
                self.written = Some(positions[head_end - 1]);
            }
            if self.in_transaction {
                self.commit(Some(checkpoint)).await?;
            }
        }
        let tail_from = skip.max(head_end);
        if tail_from < positions.len() {
            let tail: Vec<_> = in_range(tail_from, positions.len()).collect();
            if !tail.is_empty() {
                self.produce(&tail, true).await?;
            }
            self.open.event_count += (positions.len() - tail_from) as u64;
            self.written = positions.last().copied();
            let overdue = self
                .open
                .started
                .is_some_and(|started| started.elapsed() >= self.max_open);
            if self.in_transaction && (self.open.event_count >= self.max_events || overdue) {
                self.commit(None).await?;
            }
        }
        self.counter = counter;
        Ok(())
    }

    /// A batch without events may still carry records: a heartbeat, or the END of a transaction
    /// whose last event came in an earlier batch. They join the open transaction (committed with
    /// the batch's checkpoint, if any) at the position last written. Before anything was
    /// written there is no position to commit them with, and a heartbeat is all such a batch can
    /// hold: it is not produced.
    async fn write_metadata_only(
        &mut self,
        batch: &Batch,
        records: &[OutgoingRecord<'_>],
    ) -> Result<(), KafkaSinkError> {
        let Some(at) = self.written else {
            return Ok(());
        };
        if !records.is_empty() {
            let placed: Vec<_> = records.iter().map(|record| (at, record)).collect();
            self.produce(&placed, batch.checkpoint.is_none()).await?;
        }
        if let Some(checkpoint) = batch.checkpoint {
            if self.in_transaction {
                self.commit(Some(checkpoint)).await?;
            }
        }
        Ok(())
    }

    /// Produce `records` into the current transaction (begun if needed); `keep` keeps copies
    /// for a replay, because the transaction stays open after this write.
    async fn produce(
        &mut self,
        records: &[(EventPosition, &OutgoingRecord<'_>)],
        keep: bool,
    ) -> Result<(), KafkaSinkError> {
        self.begin()?;
        let refs: Vec<&OutgoingRecord<'_>> = records.iter().map(|(_, r)| *r).collect();
        produce_all(self.producer()?, refs)
            .await
            .map_err(|e| self.classify(e))?;
        if keep {
            self.open.records.extend(
                records
                    .iter()
                    .map(|(position, record)| (*position, record.to_owned_record())),
            );
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<(), KafkaSinkError> {
        if self.in_transaction {
            return Ok(());
        }
        self.producer()?
            .begin_transaction()
            .map_err(|source| self.transaction_error("beginning a transaction", source))?;
        self.in_transaction = true;
        self.open.started = Some(Instant::now());
        Ok(())
    }

    /// Commit the open transaction with the offsets record of what it reached.
    async fn commit(&mut self, checkpoint: Option<Lsn>) -> Result<(), KafkaSinkError> {
        let Some(last_event) = self.written else {
            return Ok(());
        };
        let position = CommittedPosition {
            last_event,
            checkpoint,
        };
        let value = offsets::encode_value(&self.pipeline, &self.sink, &position);
        let record = OutgoingRecord {
            topic: &self.offsets_topic,
            key: Some(self.offsets_key.as_bytes()),
            value: Some(&value),
            headers: Vec::new(),
            event: None,
        };
        produce_all(self.producer()?, std::slice::from_ref(&record))
            .await
            .map_err(|e| self.classify(e))?;
        let producer = self.producer()?.clone();
        let result = tokio::task::spawn_blocking(move || {
            producer.commit_transaction(TRANSACTION_CALL_TIMEOUT)
        })
        .await
        .map_err(|_| KafkaSinkError::Canceled {
            topic: self.offsets_topic.clone(),
        })?;
        result.map_err(|source| self.transaction_error("committing", source))?;
        self.in_transaction = false;
        self.open = OpenTransaction::default();
        tracing::debug!(
            transactional_id = %self.transactional_id,
            position = ?last_event, checkpoint = ?checkpoint,
            "kafka transaction committed"
        );
        Ok(())
    }

    /// A new producer: fence older ones, read back the committed position, and produce again
    /// what the failed transaction held beyond it.
    async fn start(&mut self) -> Result<(), KafkaSinkError> {
        let producer: FutureProducer<LogContext> = transactional_producer_config(
            &self.config,
            &self.transactional_id,
            self.transaction_timeout,
        )
        .create_with_context(LogContext)
        .map_err(KafkaSinkError::client)?;
        let init = producer.clone();
        tokio::task::spawn_blocking(move || init.init_transactions(TRANSACTION_CALL_TIMEOUT))
            .await
            .map_err(|_| KafkaSinkError::Canceled {
                topic: self.offsets_topic.clone(),
            })?
            .map_err(|source| self.transaction_error("initializing transactions", source))?;
        prepare_offsets_topic(&self.config, &self.admin, &producer, &self.offsets_topic).await?;
        let (config, topic, key) = (
            self.config.clone(),
            self.offsets_topic.clone(),
            self.offsets_key.clone(),
        );
        let committed =
            tokio::task::spawn_blocking(move || offsets::read_latest(&config, &topic, &key))
                .await
                .map_err(|_| KafkaSinkError::Canceled {
                    topic: self.offsets_topic.clone(),
                })??;
        let committed = committed.map(|c| c.last_event);
        tracing::info!(
            transactional_id = %self.transactional_id,
            committed = ?committed,
            "kafka transactions ready; changes up to the committed position are skipped"
        );
        self.producer = Some(producer);
        self.in_transaction = false;
        // What the failed transaction held beyond the committed position goes again into the
        // next one; the rest was committed after all.
        let replay: Vec<(EventPosition, OwnedRecord)> = std::mem::take(&mut self.open.records)
            .into_iter()
            .filter(|(position, _)| committed.is_none_or(|c| *position > c))
            .collect();
        // Everything up to the committed position is in Kafka, and what the replay holds goes
        // in again now; anything after (the failed attempt's own records) is written anew.
        self.written = committed.max(replay.last().map(|(position, _)| *position));
        self.open = OpenTransaction::default();
        // Kept before producing: if this attempt fails too, the next one replays them again.
        // Records, not events: close enough for the bound, which only limits memory.
        self.open.event_count = replay.len() as u64;
        self.open.records = replay;
        if !self.open.records.is_empty() {
            self.begin()?;
            let owned: Vec<OutgoingRecord<'_>> = self
                .open
                .records
                .iter()
                .map(|(_, r)| r.as_outgoing())
                .collect();
            produce_all(self.producer()?, &owned)
                .await
                .map_err(|e| self.classify(e))?;
        }
        Ok(())
    }

    /// After a failure: abort what is open (best effort) and drop the producer, so that the
    /// next attempt starts over from the committed position. A fenced producer stays down.
    async fn fail(&mut self, error: &KafkaSinkError) {
        tracing::warn!(transactional_id = %self.transactional_id, %error, "kafka transaction failed");
        if let Some(producer) = self.producer.take() {
            if self.in_transaction && !matches!(error, KafkaSinkError::Fenced { .. }) {
                let _ = tokio::task::spawn_blocking(move || {
                    producer.abort_transaction(TRANSACTION_CALL_TIMEOUT)
                })
                .await;
            }
        }
        self.in_transaction = false;
    }

    /// Abort what is open on orderly shutdown: it holds no acknowledged position, so
    /// PostgreSQL sends it again.
    pub async fn close(&mut self) {
        if let Some(producer) = self.producer.take() {
            if self.in_transaction {
                let _ = tokio::task::spawn_blocking(move || {
                    producer.abort_transaction(TRANSACTION_CALL_TIMEOUT)
                })
                .await;
            }
        }
        self.in_transaction = false;
    }

    fn producer(&self) -> Result<&FutureProducer<LogContext>, KafkaSinkError> {
        self.producer
            .as_ref()
            .ok_or_else(|| KafkaSinkError::Canceled {
                topic: self.offsets_topic.clone(),
            })
    }

    /// A transaction step's failure, as fencing when a newer producer took over.
    fn transaction_error(&self, action: &'static str, source: KafkaError) -> KafkaSinkError {
        if source.rdkafka_error_code().is_some_and(is_fencing_code) {
            return KafkaSinkError::Fenced {
                transactional_id: self.transactional_id.clone(),
            };
        }
        KafkaSinkError::Transaction {
            transactional_id: self.transactional_id.clone(),
            action,
            source,
        }
    }

    /// `error`, or fencing when the producer's fatal error says a newer producer took over
    /// (the failed step itself may only report the purge that followed).
    fn fenced_or(&self, error: KafkaSinkError) -> KafkaSinkError {
        let fatal = self
            .producer
            .as_ref()
            .and_then(|p| p.client().fatal_error());
        match fatal {
            Some((code, _)) if is_fencing_code(code) => KafkaSinkError::Fenced {
                transactional_id: self.transactional_id.clone(),
            },
            _ => error,
        }
    }

    /// A produce failure, as fencing when a newer producer took over.
    fn classify(&self, error: KafkaSinkError) -> KafkaSinkError {
        match &error {
            KafkaSinkError::Produce { source, .. }
                if source.rdkafka_error_code().is_some_and(is_fencing_code) =>
            {
                KafkaSinkError::Fenced {
                    transactional_id: self.transactional_id.clone(),
                }
            }
            _ => error,
        }
    }
}
