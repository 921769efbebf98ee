//! The random workload of the end-to-end sink tests: transactions of inserts, updates and
//! deletes on an `items`-shaped table, reproducible from a seed, on request with truncates,
//! large transactions and values stored out of line (TOAST), some of them left unchanged by
//! updates; and the daemon, or a sink's server, brought down in the middle of it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{self, SLOT};
use crate::support::{self, SluiceProcess, ThrowawayPostgres, DEFAULT_DATABASE};

/// How long the daemon may take to deliver something, and to let go of its slot.
const WAIT: Duration = Duration::from_secs(180);

/// The table the workload writes.
pub const SOURCE_TABLE: &str = "CREATE TABLE items (id bigint PRIMARY KEY, qty int, \
                            price numeric(12,2), note text, at timestamptz)";

/// Rows one large transaction inserts.
const LARGE_TRANSACTION_ROWS: i64 = 300;

/// Repeats of a 32-character digest in a large `note`: about 3 kB, past the 2 kB TOAST
/// threshold, stored out of line when the column's storage is `EXTERNAL`.
const LARGE_NOTE_REPEATS: u64 = 100;

/// A workload's state: the random generator and the ids it believes live.
pub struct Workload {
    table: String,
    state: u64,
    next_id: i64,
    live: Vec<i64>,
    truncates: bool,
    large: bool,
    partial_updates: bool,
}

impl Workload {
    /// Inserts, updates and deletes on `items` from ids 1 up.
    pub fn new(seed: u64) -> Self {
        Workload {
            table: "items".into(),
            state: seed,
            next_id: 1,
            live: Vec::new(),
            truncates: false,
            large: false,
            partial_updates: false,
        }
    }

    /// The table written to.
    pub fn on_table(mut self, table: &str) -> Self {
        self.table = table.into();
        self
    }

    /// New ids start at `first` (concurrent sessions each take their own range).
    pub fn ids_from(mut self, first: i64) -> Self {
        self.next_id = first;
        self
    }

    /// Now and then a transaction truncates the table.
    pub fn with_truncates(mut self) -> Self {
        self.truncates = true;
        self
    }

    /// Now and then a transaction inserts [`LARGE_TRANSACTION_ROWS`] rows, and notes are
    /// sometimes large (stored out of line).
    pub fn with_large_values(mut self) -> Self {
        self.large = true;
        self
    }

    /// Some updates leave the note untouched: an unchanged TOAST value when it is large.
    pub fn with_partial_updates(mut self) -> Self {
        self.partial_updates = true;
        self
    }

    fn random(&mut self, below: u64) -> u64 {
        // xorshift64: reproducible without a dependency.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % below
    }

    fn note(&mut self, id: i64) -> String {
        if self.large && self.random(10) == 0 {
            let salt = self.random(1_000_000);
            return format!("repeat(md5('{id}-{salt}'), {LARGE_NOTE_REPEATS})");
        }
        format!("'it''s \"{id}\" \\ {}'", self.random(1000))
    }

    fn values(&mut self, id: i64) -> String {
        let qty = match self.random(10) {
            0 => "NULL".to_owned(),
            _ => (self.random(2000) as i64 - 1000).to_string(),
        };
        let price = format!("{}.{:02}", self.random(100_000), self.random(100));
        let note = self.note(id);
        let at = format!("to_timestamp({})", 1_700_000_000 + self.random(10_000_000));
        format!("{qty}, {price}, {note}, {at}")
    }

    /// One transaction, as SQL run in one implicit transaction.
    pub fn transaction(&mut self) -> String {
        let table = self.table.clone();
        if self.truncates && self.random(100) == 0 {
            self.live.clear();
            return format!("TRUNCATE {table};");
        }
        if self.large && self.random(500) == 0 {
            let first = self.next_id;
            self.next_id += LARGE_TRANSACTION_ROWS;
            self.live.extend(first..self.next_id);
            return format!(
                "INSERT INTO {table} SELECT g, g % 1000, (g % 100000) / 100.0, \
                 repeat(md5(g::text), {LARGE_NOTE_REPEATS}), to_timestamp(1700000000 + g) \
                 FROM generate_series({first}, {}) g;",
                self.next_id - 1
            );
        }
        let mut sql = String::new();
        for _ in 0..=self.random(8) {
            let roll = self.random(100);
            if self.live.len() < 5 || roll < 50 {
                let id = self.next_id;
                self.next_id += 1;
                self.live.push(id);
                let values = self.values(id);
                sql.push_str(&format!("INSERT INTO {table} VALUES ({id}, {values});"));
            } else if roll < 85 {
                let index = self.random(self.live.len() as u64) as usize;
                let id = self.live[index];
                if self.partial_updates && roll < 60 {
                    let qty = self.random(1000);
                    sql.push_str(&format!("UPDATE {table} SET qty = {qty} WHERE id = {id};"));
                    continue;
                }
                let values = self.values(id);
                sql.push_str(&format!(
                    "UPDATE {table} SET (qty, price, note, at) = ({values}) WHERE id = {id};"
                ));
            } else {
                let index = self.random(self.live.len() as u64) as usize;
                let id = self.live.swap_remove(index);
                sql.push_str(&format!("DELETE FROM {table} WHERE id = {id};"));
            }
        }
        sql
    }
}

/// A session writing the workload (from a seed) in the background, until it wrote at least
/// its minimum of transactions and was told to finish.
pub struct Writer {
    writing: Arc<AtomicBool>,
    committed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<usize>,
    transactions: usize,
}

impl Writer {
    pub async fn start(pg: &ThrowawayPostgres, seed: u64, transactions: usize) -> Writer {
        let client = pg.client(DEFAULT_DATABASE).await.unwrap();
        let writing = Arc::new(AtomicBool::new(true));
        let committed = Arc::new(AtomicUsize::new(0));
        let task = {
            let (writing, committed) = (writing.clone(), committed.clone());
            tokio::spawn(async move {
                let mut workload = Workload::new(seed);
                let mut count = 0;
                while count < transactions || writing.load(Ordering::Relaxed) {
                    client.batch_execute(&workload.transaction()).await.unwrap();
                    count += 1;
                    committed.store(count, Ordering::Relaxed);
                }
                count
            })
        };
        Writer {
            writing,
            committed,
            task,
            transactions,
        }
    }

    /// Transactions committed so far.
    pub fn committed(&self) -> usize {
        self.committed.load(Ordering::Relaxed)
    }

    /// Stop once the minimum is written; fails unless it was.
    pub async fn finish(self) {
        self.writing.store(false, Ordering::Relaxed);
        let written = self.task.await.unwrap();
        assert!(written >= self.transactions, "{written} transactions");
    }
}

/// Transactions the workload commits while a test holds a fault: enough that the sinks fall
/// behind the source, so the fault meets changes still on their way.
const TRANSACTIONS_DURING_A_FAULT: usize = 30;

/// Hold a fault until the workload whose count of committed transactions `committed` reads
/// moved on by [`TRANSACTIONS_DURING_A_FAULT`].
pub async fn hold_while_the_workload_moves_on(committed: impl Fn() -> usize) {
    let held_from = committed();
    support::wait_until("the workload moves on during the fault", WAIT, || {
        let moved = committed() >= held_from + TRANSACTIONS_DURING_A_FAULT;
        async move { moved }
    })
    .await;
}

/// Wait until `started` holds, or fail with `daemon`'s log.
pub async fn wait_started<F, Fut>(daemon: &SluiceProcess, mut started: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !started().await {
        assert!(
            Instant::now() < deadline,
            "nothing reached the target before the fault:\n{}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Run `sluice ARGS` while the workload (from `seed`) writes at least `transactions`
/// transactions; once `started` holds, kill -9 the daemon, wait until its slot is released and
/// start it again, so that it dies mid-stream. Returns the restarted daemon once the writer is
/// done.
pub async fn kill_mid_workload<F, Fut>(
    pg: &ThrowawayPostgres,
    args: &[&str],
    seed: u64,
    transactions: usize,
    started: F,
) -> SluiceProcess
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let daemon = SluiceProcess::spawn(args, &[]);
    harness::wait_streaming(pg).await;

    // The writer keeps going through the kill and the restart.
    let writer = Writer::start(pg, seed, transactions).await;
    wait_started(&daemon, started).await;
    daemon.kill();
    drop(daemon);
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    support::wait_slot_released(&client, SLOT, WAIT).await;

    let daemon = SluiceProcess::spawn(args, &[]);
    harness::wait_streaming(pg).await;
    writer.finish().await;
    daemon
}
