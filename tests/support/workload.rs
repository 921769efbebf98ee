//! The random workload of the end-to-end sink tests: transactions of inserts, updates and
//! deletes on one `items` table, reproducible from a seed, and the daemon killed in the middle
//! of it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{self, SLOT};
use crate::support::{self, SluiceProcess, ThrowawayPostgres, DEFAULT_DATABASE};

/// How long the daemon may take to deliver something, and to let go of its slot.
const WAIT: Duration = Duration::from_secs(180);

/// The table the workload writes.
pub const SOURCE_TABLE: &str = "CREATE TABLE items (id bigint PRIMARY KEY, qty int, \
                            price numeric(12,2), note text, at timestamptz)";

/// A deterministic random workload of inserts, updates and deletes.
pub struct Workload {
    state: u64,
    next_id: i64,
    live: Vec<i64>,
}

impl Workload {
    pub fn new(seed: u64) -> Self {
        Workload {
            state: seed,
            next_id: 1,
            live: Vec::new(),
        }
    }

    fn random(&mut self, below: u64) -> u64 {
        // xorshift64: reproducible without a dependency.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % below
    }

    fn values(&mut self, id: i64) -> String {
        let qty = match self.random(10) {
            0 => "NULL".to_owned(),
            _ => (self.random(2000) as i64 - 1000).to_string(),
        };
        let price = format!("{}.{:02}", self.random(100_000), self.random(100));
        let note = format!("'it''s \"{id}\" \\ {}'", self.random(1000));
        let at = format!("to_timestamp({})", 1_700_000_000 + self.random(10_000_000));
        format!("{qty}, {price}, {note}, {at}")
    }

    /// One transaction of one to eight changes, as SQL run in one implicit transaction.
    pub fn transaction(&mut self) -> String {
        let mut sql = String::new();
        for _ in 0..=self.random(8) {
            let roll = self.random(100);
            if self.live.len() < 5 || roll < 50 {
                let id = self.next_id;
                self.next_id += 1;
                self.live.push(id);
                let values = self.values(id);
                sql.push_str(&format!("INSERT INTO items VALUES ({id}, {values});"));
            } else if roll < 85 {
                let index = self.random(self.live.len() as u64) as usize;
                let id = self.live[index];
                let values = self.values(id);
                sql.push_str(&format!(
                    "UPDATE items SET (qty, price, note, at) = ({values}) WHERE id = {id};"
                ));
            } else {
                let index = self.random(self.live.len() as u64) as usize;
                let id = self.live.swap_remove(index);
                sql.push_str(&format!("DELETE FROM items WHERE id = {id};"));
            }
        }
        sql
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
    mut started: F,
) -> SluiceProcess
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let daemon = SluiceProcess::spawn(args, &[]);
    harness::wait_streaming(pg).await;

    // The writer keeps going through the kill and the restart.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let client = pg.client(DEFAULT_DATABASE).await.unwrap();
        let writing = writing.clone();
        tokio::spawn(async move {
            let mut workload = Workload::new(seed);
            let mut count = 0;
            while count < transactions || writing.load(Ordering::Relaxed) {
                client.batch_execute(&workload.transaction()).await.unwrap();
                count += 1;
            }
            count
        })
    };
    let deadline = Instant::now() + WAIT;
    while !started().await {
        assert!(
            Instant::now() < deadline,
            "nothing reached the target before the kill:\n{}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.kill();
    drop(daemon);
    let client = pg.client(DEFAULT_DATABASE).await.unwrap();
    support::wait_slot_released(&client, SLOT, WAIT).await;

    let daemon = SluiceProcess::spawn(args, &[]);
    harness::wait_streaming(pg).await;
    writing.store(false, Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(written >= transactions, "{written} transactions");
    daemon
}
