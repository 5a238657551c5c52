//! Servers that misbehave the way a stuck or dying MySQL does, for the tests of what talks to
//! one (the probe, the fence).

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A server that accepts TCP but never greets, like a SIGSTOPped mysqld: its port, and the
/// task holding the connections (abort it at the end).
pub async fn silent() -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (port, hold)
}

/// A server that closes every connection at once.
pub async fn closing() -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let close = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    (port, close)
}
