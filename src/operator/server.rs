//! The control socket: a Unix socket (mode 0660, group configurable) taking JSON-lines
//! requests. A client that sends garbage, too much, or nothing gets an error (where it can
//! still read one) and is dropped; the daemon never waits on a client. At most `max_clients`
//! are connected at once: one more is told so and closed, so local clients cannot take the
//! file descriptors the health checks and sessions need.

use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;
use tracing::{debug, warn};

use super::protocol::{parse_request, Command, Response, MAX_REQUEST_LEN};

/// A client that sends nothing for this long is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Writing a response may not take longer (a client that does not read is dropped).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers one command. Implemented by the daemon.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, command: Command) -> Pin<Box<dyn Future<Output = Response> + Send + '_>>;
}

/// Creates the socket: its folder if missing, a stale socket file replaced, mode 0660 and the
/// group set. Fails if another daemon answers on the path.
pub fn bind(path: &Path, group: Option<&str>) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{}: another primaryd is answering there", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Some(group) = group {
        let gid = nix::unistd::Group::from_name(group)
            .map_err(io::Error::other)?
            .ok_or_else(|| io::Error::other(format!("group {group:?} does not exist")))?
            .gid;
        nix::unistd::chown(path, None, Some(gid)).map_err(io::Error::other)?;
    }
    Ok(listener)
}

/// Accepts clients until the listener fails, at most `max_clients` at a time.
pub async fn serve(
    listener: UnixListener,
    handler: Arc<dyn Handler>,
    max_clients: usize,
) -> io::Error {
    let slots = Arc::new(Semaphore::new(max_clients));
    loop {
        match listener.accept().await {
            Ok((stream, _)) => match Arc::clone(&slots).try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(client(stream, Arc::clone(&handler), permit));
                }
                Err(_) => refuse(stream, max_clients),
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                warn!("control socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return e,
        }
    }
}

/// Tells a client beyond the limit why it is closed. Never waits: a fresh socket's buffer
/// takes the line, and a client that cannot take it loses nothing it could use.
fn refuse(stream: UnixStream, max_clients: usize) {
    debug!("control client refused: {max_clients} connected already");
    let response = Response::error(format!(
        "too many control clients: {max_clients} are connected ([control] max_clients); \
         try again later"
    ));
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    let _ = stream.try_write(&out);
}

async fn client(stream: UnixStream, handler: Arc<dyn Handler>, _slot: OwnedSemaphorePermit) {
    let (reader, mut writer) = stream.into_split();
    // One byte more than allowed, so an overlong line is detected rather than cut.
    let mut reader = BufReader::new(reader.take(0));
    let mut line = Vec::new();
    loop {
        line.clear();
        reader.get_mut().set_limit(MAX_REQUEST_LEN as u64 + 1);
        let read = timeout(IDLE_TIMEOUT, reader.read_until(b'\n', &mut line)).await;
        let response = match read {
            Err(_) | Ok(Err(_)) | Ok(Ok(0)) => return,
            Ok(Ok(_)) if line.len() > MAX_REQUEST_LEN => {
                Err(format!("request longer than {MAX_REQUEST_LEN} bytes"))
            }
            Ok(Ok(_)) => std::str::from_utf8(&line)
                .map_err(|_| "request is not UTF-8".to_string())
                .and_then(|text| parse_request(text.trim_end())),
        };
        let (response, keep) = match response {
            Ok(request) => (handler.handle(request.command).await, true),
            Err(e) => {
                debug!("control client dropped: {e}");
                (Response::error(e), false)
            }
        };
        let mut out = serde_json::to_vec(&response).unwrap_or_default();
        out.push(b'\n');
        if !matches!(
            timeout(WRITE_TIMEOUT, writer.write_all(&out)).await,
            Ok(Ok(()))
        ) || !keep
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Handler for Echo {
        fn handle(&self, command: Command) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
            Box::pin(async move { Response::ok(serde_json::to_value(&command).unwrap()) })
        }
    }

    async fn roundtrip(stream: &mut UnixStream, line: &[u8]) -> Option<Response> {
        stream.write_all(line).await.ok()?;
        let mut buf = Vec::new();
        let mut reader = BufReader::new(stream);
        reader.read_until(b'\n', &mut buf).await.ok()?;
        serde_json::from_slice(&buf).ok()
    }

    #[tokio::test]
    async fn answers_requests_and_drops_clients_that_send_garbage_or_too_much() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/primaryd.sock");
        let listener = bind(&path, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o660);
        tokio::spawn(serve(listener, Arc::new(Echo), 16));

        let mut c = UnixStream::connect(&path).await.unwrap();
        let r = roundtrip(&mut c, b"{\"version\":1,\"command\":\"show-peers\"}\n").await;
        assert!(r.unwrap().ok);
        // Several requests on one connection.
        let r = roundtrip(&mut c, b"{\"version\":1,\"command\":\"reload\"}\n").await;
        assert_eq!(r.unwrap().data.unwrap()["command"], "reload");

        let r = roundtrip(&mut c, b"not json\n").await.unwrap();
        assert!(!r.ok && r.error.unwrap().starts_with("invalid request"));
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "connection closed after garbage");

        let mut c = UnixStream::connect(&path).await.unwrap();
        let big = vec![b'x'; MAX_REQUEST_LEN + 10];
        let r = roundtrip(&mut c, &big).await.unwrap();
        assert!(r.error.unwrap().contains("longer than"));

        // Still serving.
        let mut c = UnixStream::connect(&path).await.unwrap();
        let r = roundtrip(&mut c, b"{\"version\":1,\"command\":\"show-routes\"}\n").await;
        assert!(r.unwrap().ok);
    }

    #[tokio::test]
    async fn clients_beyond_the_limit_are_told_and_closed_and_a_freed_slot_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("primaryd.sock");
        tokio::spawn(serve(bind(&path, None).unwrap(), Arc::new(Echo), 2));
        let show = b"{\"version\":1,\"command\":\"show-peers\"}\n";
        let mut first = UnixStream::connect(&path).await.unwrap();
        let mut second = UnixStream::connect(&path).await.unwrap();
        assert!(roundtrip(&mut first, show).await.unwrap().ok);
        assert!(roundtrip(&mut second, show).await.unwrap().ok);
        // Both stay connected: a third is refused with the reason, without sending anything.
        let mut third = UnixStream::connect(&path).await.unwrap();
        let mut answer = String::new();
        timeout(Duration::from_secs(5), third.read_to_string(&mut answer))
            .await
            .expect("the refusal comes at once")
            .unwrap();
        let r: Response = serde_json::from_str(answer.trim_end()).unwrap();
        assert!(!r.ok);
        assert!(
            r.error
                .unwrap()
                .starts_with("too many control clients: 2 are connected"),
            "{answer}"
        );
        // One leaves: the next client is served.
        drop(first);
        let served = timeout(Duration::from_secs(5), async {
            loop {
                let mut c = UnixStream::connect(&path).await.unwrap();
                if let Some(r) = roundtrip(&mut c, show).await {
                    if r.ok {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(served.is_ok(), "a freed slot was never reused");
        assert!(roundtrip(&mut second, show).await.unwrap().ok);
    }

    #[tokio::test]
    async fn a_live_socket_is_not_stolen_and_a_stale_one_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("primaryd.sock");
        let first = bind(&path, None).unwrap();
        let e = bind(&path, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        drop(first);
        // The file is left behind by a dead daemon: replaced.
        assert!(path.exists());
        bind(&path, None).unwrap();
        assert!(bind(&path, Some("no-such-group-primaryd")).is_err());
    }
}
