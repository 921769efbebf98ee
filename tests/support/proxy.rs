//! A fault-injection TCP proxy (a test double, not a server: no real network can be told to
//! drop or stall one connection on demand). It forwards a loopback port to a real server's port
//! and, when told, cuts every connection (and refuses new ones) or stalls them (bytes stop
//! flowing both ways, sockets stay open), until it is told to pass traffic again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways.
    Pass,
    /// Close every open connection; accept new ones only to close them at once.
    Cut,
    /// Keep connections open but move no bytes; new connections wait the same way.
    Stall,
}

/// A proxy in front of one upstream port; stops on drop.
pub struct FaultProxy {
    port: u16,
    mode: Arc<watch::Sender<Fault>>,
    /// Open connections a cut closed so far.
    cut: Arc<AtomicUsize>,
    /// Traffic a fault held back or refused so far (see [`FaultProxy::blocked_traffic`]).
    blocked: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listen on a free loopback port and forward to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (mode, _) = watch::channel(Fault::Pass);
        let mode = Arc::new(mode);
        let cut = Arc::new(AtomicUsize::new(0));
        let blocked = Arc::new(AtomicUsize::new(0));
        let counters = Counters {
            cut: cut.clone(),
            blocked: blocked.clone(),
        };
        let task = tokio::spawn(accept_loop(listener, upstream, mode.clone(), counters));
        FaultProxy {
            port,
            mode,
            cut,
            blocked,
            task,
        }
    }

    /// How often a fault met a client's traffic so far: a connection opened during a cut or a
    /// stall, or bytes sent on an open connection during a stall (counted once per stall and
    /// direction). A fault that met none hit nothing.
    pub fn blocked_traffic(&self) -> usize {
        self.blocked.load(Ordering::Relaxed)
    }

    /// How many open connections a cut has closed so far: a cut that closed none hit nothing.
    pub fn cut_connections(&self) -> usize {
        self.cut.load(Ordering::Relaxed)
    }

    /// The port clients connect to instead of the server's.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Change what happens to traffic from now on, for open and new connections alike.
    pub fn set(&self, fault: Fault) {
        self.mode.send_replace(fault);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the proxy counts, shared with every connection.
#[derive(Clone)]
struct Counters {
    cut: Arc<AtomicUsize>,
    blocked: Arc<AtomicUsize>,
}

async fn accept_loop(
    listener: TcpListener,
    upstream: u16,
    mode: Arc<watch::Sender<Fault>>,
    counters: Counters,
) {
    while let Ok((client, _)) = listener.accept().await {
        let watch = mode.subscribe();
        tokio::spawn(connection(client, upstream, watch, counters.clone()));
    }
}

/// One client connection: wait while stalled, close when cut, otherwise pipe bytes both ways
/// until either side closes or the proxy cuts (counted in `cut`).
async fn connection(
    mut client: TcpStream,
    upstream: u16,
    mut mode: watch::Receiver<Fault>,
    counters: Counters,
) {
    if *mode.borrow() != Fault::Pass {
        counters.blocked.fetch_add(1, Ordering::Relaxed);
    }
    if !wait_for_pass(&mut mode).await {
        let _ = client.shutdown().await;
        return;
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        _ = pump(client_read, server_write, mode.clone(), &counters.blocked) => {}
        _ = pump(server_read, client_write, mode.clone(), &counters.blocked) => {}
    }
    if *mode.borrow() == Fault::Cut {
        counters.cut.fetch_add(1, Ordering::Relaxed);
    }
}

/// Wait until traffic may pass: `false` when the proxy cuts (or is gone) instead.
async fn wait_for_pass(mode: &mut watch::Receiver<Fault>) -> bool {
    loop {
        match *mode.borrow_and_update() {
            Fault::Pass => return true,
            Fault::Cut => return false,
            Fault::Stall => {}
        }
        if mode.changed().await.is_err() {
            return false;
        }
    }
}

/// [`wait_for_pass`] for an open connection, counting in `blocked` when bytes arrive to be
/// read during a stall (once per stall).
async fn wait_for_pass_noting(
    from: &OwnedReadHalf,
    mode: &mut watch::Receiver<Fault>,
    blocked: &AtomicUsize,
) -> bool {
    let mut noted = false;
    loop {
        match *mode.borrow_and_update() {
            Fault::Pass => return true,
            Fault::Cut => return false,
            Fault::Stall => {}
        }
        tokio::select! {
            changed = mode.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
            ready = from.readable(), if !noted => {
                noted = true;
                if ready.is_ok() {
                    blocked.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Copy one direction without losing a byte: a chunk read while traffic passes is held through
/// a stall and written once traffic passes again; a cut ends the copy.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut mode: watch::Receiver<Fault>,
    blocked: &AtomicUsize,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        if !wait_for_pass_noting(&from, &mut mode, blocked).await {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            // Reads are cancel-safe: on a mode change, look again before reading.
            _ = mode.changed() => continue,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !wait_for_pass(&mut mode).await || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
