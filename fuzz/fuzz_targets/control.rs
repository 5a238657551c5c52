//! Fuzzes the control socket: the real server (`operator::server::serve`, behind a handler that
//! echoes the command) on a Unix socket, sent the input as one client's byte stream. Every
//! answer must be what the documented rules give, worked out here line by line with
//! `parse_request`: a line (newline included) of at most `MAX_REQUEST_LEN` bytes that is UTF-8
//! and a request of our version is dispatched and the client kept; anything else gets one
//! error and the connection is closed. A request that parses must serialize to a line that
//! parses back to it. A panic anywhere (server task, parser, handler) is a crash.
//!
//! Input: one flags byte, then the client's bytes. Bit 7 set: the first line is padded with
//! leading spaces (JSON whitespace) to `MAX_REQUEST_LEN - 3 + (flags & 7)` bytes, so the
//! length limit is tried from both sides with requests that are otherwise valid.
#![no_main]

use std::ffi::CString;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use primaryd::operator::protocol::{parse_request, Command, Response, MAX_REQUEST_LEN};
use primaryd::operator::server::{bind, serve, Handler};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::runtime::Runtime;

struct Echo;

impl Handler for Echo {
    fn handle(&self, command: Command) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
        Box::pin(async move { Response::ok(echo(&command)) })
    }
}

fn echo(command: &Command) -> serde_json::Value {
    serde_json::to_value(command).expect("a parsed command serializes")
}

struct Server {
    rt: Runtime,
    path: PathBuf,
}

static DIR: OnceLock<CString> = OnceLock::new();

/// libFuzzer ends with exit(): remove the socket and its folder then.
extern "C" fn remove_dir() {
    if let Some(dir) = DIR.get() {
        let dir = PathBuf::from(dir.to_str().unwrap_or_default());
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        // libFuzzer's main, not Rust's, runs first: a write to a client the server dropped
        // must be an EPIPE error, not a signal that ends the run.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let dir =
            std::env::temp_dir().join(format!("primaryd-fuzz-control-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        DIR.set(CString::new(dir.to_str().unwrap()).unwrap())
            .unwrap();
        unsafe { libc::atexit(remove_dir) };
        let path = dir.join("primaryd.sock");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = rt.block_on(async { bind(&path, None) }).unwrap();
        rt.spawn(serve(listener, Arc::new(Echo), 4));
        Server { rt, path }
    })
}

/// The answers the rules give for `input`, in order; the connection ends after the last.
fn expected(input: &[u8]) -> Vec<Response> {
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        // The server reads at most one byte over the limit looking for the newline.
        let window = rest.len().min(MAX_REQUEST_LEN + 1);
        let len = rest[..window]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(window, |i| i + 1);
        let (line, tail) = rest.split_at(len);
        rest = tail;
        let parsed = if line.len() > MAX_REQUEST_LEN {
            Err(format!("request longer than {MAX_REQUEST_LEN} bytes"))
        } else {
            std::str::from_utf8(line)
                .map_err(|_| "request is not UTF-8".to_string())
                .and_then(|text| parse_request(text.trim_end()))
        };
        match parsed {
            Ok(request) => {
                let line = serde_json::to_string(&request).expect("a request serializes");
                assert_eq!(parse_request(&line).as_ref(), Ok(&request), "{line}");
                out.push(Response::ok(echo(&request.command)));
            }
            Err(e) => {
                out.push(Response::error(e));
                break;
            }
        }
    }
    out
}

/// One client: sends `input`, closes its sending side, reads every answer until the server
/// closes.
async fn converse(path: &std::path::Path, input: &[u8]) -> Vec<u8> {
    let stream = UnixStream::connect(path).await.expect("the server accepts");
    let (mut reader, mut writer) = stream.into_split();
    let send = async {
        // The server may close (after an error) before it has read everything.
        let _ = writer.write_all(input).await;
        let _ = writer.shutdown().await;
    };
    let receive = async {
        let mut answers = Vec::new();
        // An error after the last answer (a reset: our unread bytes) ends the conversation.
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answers.extend_from_slice(&buf[..n]),
            }
        }
        answers
    };
    tokio::join!(send, receive).1
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut input = rest.to_vec();
    if flags & 0x80 != 0 {
        let first = input
            .iter()
            .position(|&b| b == b'\n')
            .map_or(input.len(), |i| i + 1);
        let want = MAX_REQUEST_LEN - 3 + usize::from(flags & 7);
        let pad = want.saturating_sub(first);
        input.splice(0..0, std::iter::repeat_n(b' ', pad));
    }
    let want = expected(&input);
    let s = server();
    let got = s.rt.block_on(converse(&s.path, &input));
    let Some(body) = got.strip_suffix(b"\n") else {
        assert!(
            got.is_empty() && want.is_empty(),
            "answers {got:?}, expected {want:?}"
        );
        return;
    };
    let answers: Vec<Response> = body
        .split(|&b| b == b'\n')
        .map(|l| serde_json::from_slice(l).expect("every answer is one JSON line"))
        .collect();
    assert_eq!(answers, want);
});
