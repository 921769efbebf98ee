//! The random workload of the end-to-end sink tests: transactions of inserts, updates and
//! deletes on one `items` table, reproducible from a seed.

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
