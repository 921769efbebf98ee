//! Arbitrary bytes into the pgoutput parser and the change decoder. The input is a sequence of
//! messages, each preceded by its length (2 bytes, big-endian), fed to one decoder in order so
//! that its relation cache, open transaction and streamed-transaction buffers carry over from
//! message to message, as they do on a replication connection. Every message is also parsed on
//! its own, inside and outside a streamed block. Any panic is a bug: the daemon never panics
//! on input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_api::Lsn;
use sluice_source_postgres::decoder::{Decoded, Decoder, StreamBudget};
use sluice_source_postgres::pgoutput::parse_message;
use sluice_source_postgres::types::TypeCatalog;

/// Small, so that streamed transactions also take the spill path.
const MEMORY_BUDGET: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let spill = std::env::temp_dir().join("sluice-fuzz-spill");
    let _ = std::fs::create_dir_all(&spill);
    let budget = StreamBudget {
        memory_bytes: MEMORY_BUDGET,
        spill_dir: Some(spill),
    };
    let mut decoder = Decoder::new(TypeCatalog::builtin(), budget).with_protocol_version(2);
    let mut rest = data;
    let mut wal = 0x1000u64;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let (message, tail) = rest[2..].split_at(len);
        rest = tail;
        let _ = parse_message(message, false);
        let _ = parse_message(message, true);
        wal += 0x10;
        match decoder.decode(Lsn(wal), message) {
            Ok(Decoded::StreamCommitted) => while let Ok(Some(_)) = decoder.next_replayed() {},
            // An error ends the session, as it stops the pipeline; start a new one.
            Err(_) => decoder.reset_session(),
            Ok(_) => {}
        }
    }
});
