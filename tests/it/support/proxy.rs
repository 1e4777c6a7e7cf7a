//! A TCP proxy on 127.0.0.1 that can silently black-hole the path (stop forwarding, close nothing) and later forward new connections again.
//!
//! A black-holed connection stays open at both ends and every byte sent on
//! it, either way, is read and dropped: to the sidecar it looks like a
//! network partition. Connections from before or during a black-hole stay
//! dead after `restore` (as when a firewall or NAT forgot them); only new
//! connections are forwarded again.

use super::server;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct State {
    blackholed: AtomicBool,
    /// Bumped by every black-hole: connections of older generations are dead.
    generation: AtomicU64,
    /// Reads forwarded from clients to the server.
    sent: AtomicU64,
}

pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: CancellationToken,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards each connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let (state, stop) = (Arc::new(State::default()), CancellationToken::new());
        let (s, token) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (client, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(_) => continue,
                    },
                    _ = token.cancelled() => return,
                };
                let (s, token) = (s.clone(), token.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = connection(client, upstream, s) => {}
                        _ = token.cancelled() => {}
                    }
                });
            }
        });
        Self { addr, state, stop }
    }

    /// Stops forwarding on every connection, silently, and on new ones.
    pub fn blackhole(&self) {
        self.state.blackholed.store(true, Ordering::SeqCst);
        self.state.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Reads forwarded from clients to the server so far: about one per
    /// statement when each waits for its answer before the next is sent.
    pub fn sent(&self) -> u64 {
        self.state.sent.load(Ordering::SeqCst)
    }

    /// New connections are forwarded again; the black-holed ones stay dead.
    pub fn restore(&self) {
        self.state.blackholed.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn connection(client: TcpStream, upstream: SocketAddr, state: Arc<State>) {
    let generation = state.generation.load(Ordering::SeqCst);
    let (client_read, client_write) = client.into_split();
    if state.blackholed.load(Ordering::SeqCst) {
        // Accepted into a partition: nothing ever comes back.
        swallow(client_read).await;
        drop(client_write);
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let (server_read, server_write) = server.into_split();
    let counted = state.clone();
    let alive = move || generation == state.generation.load(Ordering::SeqCst);
    let alive2 = alive.clone();
    let count = move || {
        counted.sent.fetch_add(1, Ordering::SeqCst);
    };
    tokio::join!(pipe(client_read, server_write, alive, count), pipe(server_read, client_write, alive2, || ()));
}

/// Copies `from` to `to` while `alive()`; afterwards reads and drops.
/// Returns when `from` closes (only while alive is the close passed on).
/// `forwarded` is called for each read passed on.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, alive: impl Fn() -> bool, forwarded: impl Fn()) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) if alive() => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(0) | Err(_) => {
                // Dead path: the other end never hears of the close; keep
                // it open until the proxy is dropped.
                std::future::pending::<()>().await;
            }
            Ok(n) if alive() => {
                forwarded();
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
        }
    }
}

async fn swallow(mut from: OwnedReadHalf) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            std::future::pending::<()>().await;
        }
    }
    std::future::pending::<()>().await;
}

/// The test server's address, for a proxy to forward to.
pub fn server_addr() -> std::net::SocketAddr {
    let config: tokio_postgres::Config = server().admin_url.parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) if h != "localhost" => h.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    format!("{host}:{}", config.get_ports().first().copied().unwrap_or(5432)).parse().expect("test server on loopback")
}
