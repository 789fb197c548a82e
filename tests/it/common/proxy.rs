//! A fault-injecting HTTP/1.1 proxy for tests: slow answers, connection resets, 429/5xx
//! replies and redirects in front of a real server, on loopback only; and a [`Recorder`], a
//! listener that only writes down the requests it receives (the target of a redirect).
//!
//! The proxy reads one request at a time, decides its fate from a queue of faults (then the
//! standing fault, if any), and forwards the rest to the upstream with `Connection: close`, so
//! every request gets its own upstream connection and faults apply per request, not per
//! keep-alive connection. It counts the requests it saw. Threads stop when it is dropped.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Wait this long, then forward.
    Delay(Duration),
    /// Close the connection without an answer.
    Reset,
    /// Answer with this HTTP status and a Vault-style error body.
    Status(u16),
    /// Answer with a redirect (`status`, e.g. 307) to the same path on
    /// `http://127.0.0.1:<port>`.
    Redirect {
        /// The redirect's status.
        status: u16,
        /// The port the `Location` points at.
        port: u16,
    },
}

#[derive(Default)]
struct State {
    queue: VecDeque<Fault>,
    always: Option<Fault>,
}

/// A running proxy; `addr` is its `http://127.0.0.1:PORT`.
pub struct Proxy {
    /// Where clients connect.
    pub addr: String,
    state: Arc<Mutex<State>>,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, rq, sp) = (state.clone(), requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, rq, up) = (st.clone(), rq.clone(), upstream.clone());
                std::thread::spawn(move || serve(conn, &up, &st, &rq));
            }
        });
        Proxy {
            addr: format!("http://127.0.0.1:{port}"),
            state,
            requests,
            stop,
            port,
        }
    }

    /// Applies these faults to the next requests, in order.
    pub fn fail_next(&self, faults: &[Fault]) {
        self.state.lock().unwrap().queue.extend(faults);
    }

    /// Applies `fault` to every request after the queue is used up (`None`: forward).
    pub fn set_always(&self, fault: Option<Fault>) {
        self.state.lock().unwrap().always = fault;
    }

    /// Requests seen so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads one request (head and `Content-Length` body); `None` at end of stream.
fn read_request(conn: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((head, body))
}

fn serve(mut conn: TcpStream, upstream: &str, state: &Mutex<State>, requests: &AtomicUsize) {
    let Some((head, body)) = read_request(&mut conn) else {
        return;
    };
    requests.fetch_add(1, Ordering::SeqCst);
    let fault = {
        let mut s = state.lock().unwrap();
        s.queue.pop_front().or(s.always)
    };
    match fault {
        Some(Fault::Reset) => {
            let _ = conn.shutdown(Shutdown::Both);
            return;
        }
        Some(Fault::Status(code)) => {
            let body = format!("{{\"errors\":[\"injected {code}\"]}}");
            let reply = format!(
                "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes());
            return;
        }
        Some(Fault::Redirect { status, port }) => {
            let target = head.split_whitespace().nth(1).unwrap_or("/");
            let reply = format!(
                "HTTP/1.1 {status} Redirect\r\nLocation: http://127.0.0.1:{port}{target}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = conn.write_all(reply.as_bytes());
            return;
        }
        Some(Fault::Delay(d)) => std::thread::sleep(d),
        None => {}
    }
    // Forward with `Connection: close`: the upstream closes after its answer, which marks the
    // end of the response without parsing it.
    let mut rewritten: String = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    rewritten.push_str("Connection: close\r\n\r\n");
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return;
    };
    let mut response = Vec::new();
    if up.write_all(rewritten.as_bytes()).is_ok()
        && up.write_all(&body).is_ok()
        && up.read_to_end(&mut response).is_ok()
    {
        let _ = conn.write_all(&response);
    }
}

/// A loopback listener that records every request it receives (request line, headers and
/// body, as text) and answers each with a Vault-style 404.
pub struct Recorder {
    /// Its `http://127.0.0.1:PORT`.
    pub addr: String,
    /// Its port.
    pub port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Recorder {
    /// Starts listening on a free loopback port.
    pub fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind recorder");
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (hd, sp) = (heads.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let hd = hd.clone();
                std::thread::spawn(move || {
                    while let Some((head, body)) = read_request(&mut conn) {
                        let text = format!("{head}{}", String::from_utf8_lossy(&body));
                        hd.lock().unwrap().push(text);
                        let body = r#"{"errors":[]}"#;
                        let reply = format!(
                            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\
                             Content-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if conn.write_all(reply.as_bytes()).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Recorder {
            addr: format!("http://127.0.0.1:{port}"),
            port,
            heads,
            stop,
        }
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
