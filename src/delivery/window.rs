//! Delivery to a pipelined sink: up to `max_in_flight` batches handed to the sink and not yet
//! durable, their acks still sent strictly in commit order (the shape of Vector's finalizer).
//!
//! The batch at the front of the window is acknowledged once its write and every earlier one
//! resolved `Ok`. When any write fails, no new batch is begun; the window settles (every other
//! write resolves), and after the backoff every batch from the first one not durable on is
//! begun again in order, including those whose writes had succeeded behind the gap. So the checkpoint never
//! passes a batch the destination did not accept, and a resend never races the failed round.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use sluice_api::{Batch, PendingWrite, Sink, SinkError};
use tokio::sync::mpsc;

use super::driver::{has_content, DeliveryError, Driver};

/// A batch begun and not yet acknowledged.
struct Slot {
    batch: Arc<Batch>,
    /// Its write resolved `Ok` (or it had nothing to write).
    durable: bool,
}

/// How a batch enters the window.
enum Entry {
    /// Nothing to write: durable at once.
    Durable,
    /// Its write, under way.
    Pending(PendingWrite),
    /// The sink refused to begin it: to be begun again.
    Failed,
}

/// The batches in flight, in commit order, and their unresolved writes.
#[derive(Default)]
struct Window {
    slots: VecDeque<Slot>,
    /// Each resolves to its batch's sequence and the write's outcome.
    writes: FuturesUnordered<BoxFuture<'static, (u64, Result<(), SinkError>)>>,
}

impl Window {
    fn push(&mut self, batch: Arc<Batch>, entry: Entry) {
        let sequence = batch.sequence;
        self.slots.push_back(Slot {
            batch,
            durable: matches!(entry, Entry::Durable),
        });
        if let Entry::Pending(write) = entry {
            self.writes
                .push(Box::pin(async move { (sequence, write.await) }));
        }
    }

    fn mark_durable(&mut self, sequence: u64) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.batch.sequence == sequence) {
            slot.durable = true;
        }
    }

    /// The front batch, when it is durable: everything before it was acknowledged already.
    fn pop_durable(&mut self) -> Option<Arc<Batch>> {
        match self.slots.front() {
            Some(slot) if slot.durable => self.slots.pop_front().map(|s| s.batch),
            _ => None,
        }
    }

    fn front_sequence(&self) -> u64 {
        self.slots.front().map_or(0, |s| s.batch.sequence)
    }
}

/// Deliver `batches` to a pipelined `sink` with at most `max_in_flight` batches in flight.
/// Returns `Ok` when the input ended and everything was acknowledged, or when nobody takes
/// acks any more; errors as [`super::drive_sink`].
pub(super) async fn drive_window(
    driver: &mut Driver,
    sink: &mut dyn Sink,
    batches: &mut mpsc::Receiver<Arc<Batch>>,
    max_in_flight: usize,
) -> Result<(), DeliveryError> {
    let mut window = Window::default();
    // Batches to begin again, in order, before any new one: the unacknowledged part of a
    // window that failed.
    let mut resend: VecDeque<Arc<Batch>> = VecDeque::new();
    let mut input_open = true;
    loop {
        while let Some(batch) = window.pop_durable() {
            if !driver.ack(&batch, sink.dead_letter_count()) {
                return Ok(());
            }
        }
        let room = window.slots.len() < max_in_flight;
        if room {
            if let Some(batch) = resend.pop_front() {
                let sequence = batch.sequence;
                if let Some(error) = begin(driver, sink, &mut window, batch).await? {
                    recover(driver, &mut window, &mut resend, error, sequence).await?;
                }
                continue;
            }
        }
        if !input_open && window.slots.is_empty() {
            return Ok(());
        }
        tokio::select! {
            biased;
            _ = driver.abort.cancelled(), if !window.slots.is_empty() => {
                return Err(driver.cancelled(window.front_sequence()));
            }
            Some((sequence, result)) = window.writes.next(), if !window.writes.is_empty() => {
                match result {
                    Ok(()) => window.mark_durable(sequence),
                    Err(error) => {
                        recover(driver, &mut window, &mut resend, error, sequence).await?;
                    }
                }
            }
            next = batches.recv(), if room && input_open => match next {
                Some(batch) => {
                    driver.took(&batch);
                    let sequence = batch.sequence;
                    if let Some(error) = begin(driver, sink, &mut window, batch).await? {
                        recover(driver, &mut window, &mut resend, error, sequence).await?;
                    }
                }
                None => input_open = false,
            },
        }
    }
}

/// Hand `batch` to the sink and put it in the window. A batch with nothing to write is
/// durable at once. The sink's refusal to begin is returned: a failed write of that batch,
/// which is in the window, to be begun again.
async fn begin(
    driver: &Driver,
    sink: &mut dyn Sink,
    window: &mut Window,
    batch: Arc<Batch>,
) -> Result<Option<SinkError>, DeliveryError> {
    if !has_content(&batch) {
        window.push(batch, Entry::Durable);
        return Ok(None);
    }
    let started = tokio::select! {
        started = sink.begin_write(batch.clone()) => started,
        _ = driver.abort.cancelled() => return Err(driver.cancelled(batch.sequence)),
    };
    match started {
        Ok(write) => {
            window.push(batch, Entry::Pending(write));
            Ok(None)
        }
        Err(error) => {
            window.push(batch, Entry::Failed);
            Ok(Some(error))
        }
    }
}

/// After a failed write of batch `sequence`: let the window settle, queue every batch from the
/// first one not durable on to be begun again (ahead of what was queued), and wait out the
/// backoff; a fatal error ends delivery.
async fn recover(
    driver: &mut Driver,
    window: &mut Window,
    resend: &mut VecDeque<Arc<Batch>>,
    error: SinkError,
    sequence: u64,
) -> Result<(), DeliveryError> {
    settle(driver, window).await?;
    // Batches durable before the first one that is not stay, to be acknowledged.
    let gap = window
        .slots
        .iter()
        .position(|s| !s.durable)
        .unwrap_or(window.slots.len());
    for slot in window.slots.drain(gap..).rev() {
        resend.push_front(slot.batch);
    }
    driver.pause_after(error, sequence).await
}

/// Wait until every write in the window has resolved, noting which made their batch durable.
async fn settle(driver: &Driver, window: &mut Window) -> Result<(), DeliveryError> {
    let first = window.front_sequence();
    let drained = async {
        while let Some((sequence, result)) = window.writes.next().await {
            if result.is_ok() {
                window.mark_durable(sequence);
            }
        }
    };
    tokio::select! {
        _ = drained => Ok(()),
        _ = driver.abort.cancelled() => Err(driver.cancelled(first)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use sluice_api::{EncodedRecord, ErrorClass, Lsn, RecordOrigin};
    use tokio::sync::oneshot;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::checkpoint::Ack;
    use crate::delivery::drive_sink;

    type Resolver = oneshot::Sender<Result<(), SinkError>>;

    /// Fault injection: a pipelined sink whose writes resolve when, and how, the test says
    /// (out of order, failing), which no real destination does on demand. Each begun batch is
    /// reported with the handle that resolves its write.
    struct ScriptedSink {
        begun: mpsc::UnboundedSender<(u64, Resolver)>,
        in_flight: Arc<AtomicUsize>,
        most_in_flight: Arc<AtomicUsize>,
        /// A batch whose first `begin_write` is refused (a transient error).
        refuse_once: Option<u64>,
    }

    #[async_trait::async_trait]
    impl Sink for ScriptedSink {
        async fn write(&mut self, _batch: &Batch) -> Result<(), SinkError> {
            Err(SinkError::fatal("the scripted sink is pipelined"))
        }

        fn pipelined(&self) -> bool {
            true
        }

        async fn begin_write(&mut self, batch: Arc<Batch>) -> Result<PendingWrite, SinkError> {
            if self.refuse_once == Some(batch.sequence) {
                self.refuse_once = None;
                return Err(SinkError::transient("client not ready"));
            }
            let (resolve, resolved) = oneshot::channel();
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            let _ = self.begun.send((batch.sequence, resolve));
            let in_flight = self.in_flight.clone();
            Ok(Box::pin(async move {
                let result = resolved
                    .await
                    .unwrap_or_else(|_| Err(SinkError::transient("resolver dropped")));
                in_flight.fetch_sub(1, Ordering::SeqCst);
                result
            }))
        }
    }

    /// A running driver over a [`ScriptedSink`].
    struct Harness {
        batches: mpsc::Sender<Arc<Batch>>,
        begun: mpsc::UnboundedReceiver<(u64, Resolver)>,
        acks: mpsc::UnboundedReceiver<Ack>,
        most_in_flight: Arc<AtomicUsize>,
        driver: tokio::task::JoinHandle<Result<(), DeliveryError>>,
    }

    fn start(max_in_flight: usize) -> Harness {
        start_refusing(max_in_flight, None)
    }

    fn start_refusing(max_in_flight: usize, refuse_once: Option<u64>) -> Harness {
        let (batches, input) = mpsc::channel(16);
        let (begun_tx, begun) = mpsc::unbounded_channel();
        let (ack_tx, acks) = mpsc::unbounded_channel();
        let most_in_flight = Arc::new(AtomicUsize::new(0));
        let sink = ScriptedSink {
            begun: begun_tx,
            in_flight: Arc::new(AtomicUsize::new(0)),
            most_in_flight: most_in_flight.clone(),
            refuse_once,
        };
        let driver = tokio::spawn(drive_sink(
            0,
            "scripted".into(),
            Box::new(sink),
            input,
            ack_tx,
            (Duration::from_millis(1), Duration::from_millis(2)),
            max_in_flight,
            CancellationToken::new(),
            Arc::new(crate::metrics::PipelineMetrics::new(
                "slot".into(),
                vec!["scripted".into()],
                Arc::default(),
            )),
        ));
        Harness {
            batches,
            begun,
            acks,
            most_in_flight,
            driver,
        }
    }

    /// Batch `sequence` with one record and checkpoint `sequence * 100`.
    fn batch(sequence: u64) -> Arc<Batch> {
        Arc::new(Batch {
            sequence,
            events: Vec::new(),
            checkpoint: Some(Lsn(sequence * 100)),
            records: vec![EncodedRecord {
                origin: RecordOrigin::Heartbeat,
                topic: Arc::from("t"),
                key: None,
                value: Some(vec![1]),
                suppress_tombstone: false,
            }],
        })
    }

    impl Harness {
        async fn send(&self, sequences: impl IntoIterator<Item = u64>) {
            for sequence in sequences {
                self.batches
                    .send(batch(sequence))
                    .await
                    .expect("driver runs");
            }
        }

        async fn next_begun(&mut self) -> (u64, Resolver) {
            tokio::time::timeout(Duration::from_secs(10), self.begun.recv())
                .await
                .expect("a batch is begun in time")
                .expect("driver runs")
        }

        /// The next batches begun are `sequences`, in order: their resolvers.
        async fn expect_begun(&mut self, sequences: &[u64]) -> Vec<Resolver> {
            let mut resolvers = Vec::new();
            for expected in sequences {
                let (sequence, resolve) = self.next_begun().await;
                assert_eq!(sequence, *expected, "begun in order");
                resolvers.push(resolve);
            }
            resolvers
        }

        /// The next batches begun are `sequences`, in order, and each is durable at once.
        async fn expect_begun_durable(&mut self, sequences: &[u64]) {
            for resolve in self.expect_begun(sequences).await {
                resolve.send(Ok(())).unwrap();
            }
        }

        /// The next acks are for `sequences`, in order.
        async fn expect_acks(&mut self, sequences: &[u64]) {
            for expected in sequences {
                let ack = tokio::time::timeout(Duration::from_secs(10), self.acks.recv())
                    .await
                    .expect("an ack in time")
                    .expect("driver runs");
                assert_eq!(ack.sequence, *expected, "acks in commit order");
            }
        }

        /// Close the input: the driver ends, and every ack left over.
        async fn finish(mut self) -> (Result<(), DeliveryError>, Vec<u64>) {
            drop(self.batches);
            let result = self.driver.await.expect("driver task");
            let mut rest = Vec::new();
            while let Ok(ack) = self.acks.try_recv() {
                rest.push(ack.sequence);
            }
            (result, rest)
        }

        /// Close the input: the driver ends without error and acknowledges nothing more.
        async fn finish_cleanly(self) {
            let (result, rest) = self.finish().await;
            assert!(result.is_ok(), "{result:?}");
            assert!(rest.is_empty(), "no ack twice: {rest:?}");
        }
    }

    #[tokio::test]
    async fn acks_follow_commit_order_when_later_writes_are_durable_first() {
        let mut h = start(4);
        h.send(1..=3).await;
        for resolve in h.expect_begun(&[1, 2, 3]).await.into_iter().rev() {
            resolve.send(Ok(())).unwrap();
        }
        h.expect_acks(&[1, 2, 3]).await;
        h.finish_cleanly().await;
    }

    #[tokio::test]
    async fn a_failed_write_is_begun_again_with_every_later_batch_and_nothing_is_acked_past_it() {
        let mut h = start(4);
        h.send(1..=3).await;
        let [one, two, three]: [Resolver; 3] = h.expect_begun(&[1, 2, 3]).await.try_into().unwrap();
        one.send(Ok(())).unwrap();
        h.expect_acks(&[1]).await;
        three.send(Ok(())).unwrap();
        two.send(Err(SinkError::transient("broker away"))).unwrap();
        // Batch 4 arrives while the failed round is pending: the resend comes first, from the
        // gap on, in order, the durable batch 3 included.
        h.send([4]).await;
        h.expect_begun_durable(&[2, 3, 4]).await;
        h.expect_acks(&[2, 3, 4]).await;
        h.finish_cleanly().await;
    }

    #[tokio::test]
    async fn no_batch_is_begun_again_before_every_write_of_the_failed_window_resolved() {
        let mut h = start(4);
        h.send(1..=2).await;
        let [one, two]: [Resolver; 2] = h.expect_begun(&[1, 2]).await.try_into().unwrap();
        one.send(Err(SinkError::transient("broker away"))).unwrap();
        h.send([3]).await;
        // Batch 2 is still in flight. A driver that did not settle first would begin again
        // after its 1-2 ms backoff; absence can only be shown over a bounded time, so allow it
        // a hundred times that.
        let early = tokio::time::timeout(Duration::from_millis(200), h.begun.recv()).await;
        assert!(
            early.is_err(),
            "begun while the failed window was unsettled: {:?}",
            early.ok().flatten().map(|(sequence, _)| sequence)
        );
        two.send(Ok(())).unwrap();
        h.expect_begun_durable(&[1, 2, 3]).await;
        h.expect_acks(&[1, 2, 3]).await;
        h.finish_cleanly().await;
    }

    #[tokio::test]
    async fn a_batch_the_sink_refuses_to_begin_is_begun_again_before_any_later_one() {
        let mut h = start_refusing(4, Some(2));
        h.send(1..=3).await;
        h.expect_begun_durable(&[1]).await;
        h.expect_begun_durable(&[2, 3]).await;
        h.expect_acks(&[1, 2, 3]).await;
        h.finish_cleanly().await;
    }

    #[tokio::test]
    async fn the_window_never_holds_more_than_max_in_flight_batches() {
        let mut h = start(2);
        h.send(1..=6).await;
        for sequence in 1..=6 {
            h.expect_begun_durable(&[sequence]).await;
        }
        h.expect_acks(&[1, 2, 3, 4, 5, 6]).await;
        let most = h.most_in_flight.load(Ordering::SeqCst);
        h.finish_cleanly().await;
        assert!((1..=2).contains(&most), "at most 2 in flight, saw {most}");
    }

    #[tokio::test]
    async fn a_fatal_error_stops_delivery_without_acknowledging_the_batch_or_any_after_it() {
        let mut h = start(4);
        h.send(1..=2).await;
        let [one, two]: [Resolver; 2] = h.expect_begun(&[1, 2]).await.try_into().unwrap();
        two.send(Ok(())).unwrap();
        one.send(Err(SinkError::fatal("rejected"))).unwrap();
        let (result, acks) = h.finish().await;
        match result {
            Err(DeliveryError::Fatal {
                sequence, error, ..
            }) => {
                assert_eq!(sequence, 1);
                assert_eq!(error.class, ErrorClass::Fatal);
            }
            other => panic!("expected a fatal error, got {other:?}"),
        }
        assert!(acks.is_empty(), "nothing acknowledged: {acks:?}");
    }
}
