//! A fault-injecting proxy between a client (enseal-controller) and a real kube-apiserver, for
//! the fault tests of issue 16: it terminates TLS (its own CA, in the kubeconfig it writes),
//! forwards each request to the API server over TLS with the upstream kubeconfig's client
//! certificate, and on a seeded fraction of requests answers with an error (500, 503, or 429
//! with `Retry-After`) instead, closes the connection without an answer, forwards the request
//! but throws the answer away (the write happened; the client cannot know), delays it, or cuts
//! a watch stream after a while. It can also play an outage (every request answered 503) and
//! cut every open connection at once.
//!
//! One request per connection (the proxy asks the API server for `Connection: close` and
//! passes that on), so every request gets its own fault decision and a cut connection never
//! takes a pooled request with it. Request `n` (in the order the proxy reads them) gets the
//! fault that `seed` and `n` decide: the same sequence of faults on every run, though which
//! request of the controller gets which fault depends on how its concurrent requests
//! interleave.
//!
//! Blocking threads (one per connection) and rustls, as the other fakes in this crate: the
//! test crate's tokio has no networking features of its own.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;

/// Which faults, on what share of requests (per mille each).
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub seed: u64,
    /// Answered by the proxy with 500, 503 or 429 (`Retry-After: 1`), never forwarded.
    pub error: u32,
    /// Closed without an answer, never forwarded.
    pub drop: u32,
    /// Forwarded; the answer is read and thrown away and the connection closed. Never a watch.
    pub lose_answer: u32,
    /// Delayed by up to `max_delay` before being forwarded (on top of the above).
    pub delay: u32,
    pub max_delay: Duration,
    /// Watches whose stream is cut after up to `max_watch`.
    pub cut_watch: u32,
    pub max_watch: Duration,
}

/// What the proxy has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    /// Injected 500/503/429 answers (outage answers included).
    pub errors: u64,
    pub drops: u64,
    pub lost_answers: u64,
    pub delayed: u64,
    pub watches_cut: u64,
    /// Answers from the API server that carried a 410 (`"code":410`: a watch whose
    /// resourceVersion is too old, or a list continue token that expired).
    pub expired: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    drops: AtomicU64,
    lost_answers: AtomicU64,
    delayed: AtomicU64,
    watches_cut: AtomicU64,
    expired: AtomicU64,
}

struct Shared {
    faults: Mutex<Faults>,
    outage: AtomicBool,
    stop: AtomicBool,
    counters: Counters,
    /// Open connections (client side and API server side) by connection number, to cut.
    open: Mutex<HashMap<u64, Vec<TcpStream>>>,
    /// The connections among them that carry a watch.
    watches: Mutex<std::collections::HashSet<u64>>,
    next_conn: AtomicU64,
    upstream: Upstream,
    server: Arc<rustls::ServerConfig>,
}

struct Upstream {
    addr: SocketAddr,
    name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
}

pub struct FaultProxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl FaultProxy {
    /// Starts a proxy in front of the API server of `upstream_kubeconfig` (its first cluster and
    /// user, which must authenticate with a client certificate), passing everything through
    /// until [`set_faults`](Self::set_faults).
    pub fn start(upstream_kubeconfig: &Path) -> FaultProxy {
        let text = std::fs::read_to_string(upstream_kubeconfig)
            .unwrap_or_else(|e| panic!("{}: {e}", upstream_kubeconfig.display()));
        let mut kubeconfig = crate::manifest::yaml_to_json(&text);
        let b64 = |v: &Value, what: &str| -> Vec<u8> {
            let s = v
                .as_str()
                .unwrap_or_else(|| panic!("the kubeconfig has no {what}"));
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .unwrap_or_else(|e| panic!("the kubeconfig's {what}: {e}"))
        };
        let cluster = &kubeconfig["clusters"][0]["cluster"];
        let server = cluster["server"].as_str().expect("a server URL").to_owned();
        let ca = b64(
            &cluster["certificate-authority-data"],
            "certificate-authority-data",
        );
        let user = &kubeconfig["users"][0]["user"];
        let cert = b64(&user["client-certificate-data"], "client-certificate-data");
        let key = b64(&user["client-key-data"], "client-key-data");
        let hostport = server
            .strip_prefix("https://")
            .expect("an https server")
            .trim_end_matches('/');
        let addr: SocketAddr = hostport.parse().expect("the server is ip:port");

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&ca) {
            roots
                .add(c.expect("the CA PEM"))
                .expect("the CA certificate");
        }
        let client_certs: Vec<_> = CertificateDer::pem_slice_iter(&cert)
            .map(|c| c.expect("the client certificate PEM"))
            .collect();
        let client_key = PrivateKeyDer::from_pem_slice(&key).expect("the client key PEM");
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(client_certs, client_key)
            .expect("the client certificate and key");

        let dir = tempfile::tempdir().unwrap();
        let ca_file = make_certificates(dir.path());
        let certs: Vec<_> = CertificateDer::pem_file_iter(dir.path().join("server.crt"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(dir.path().join("server.key")).unwrap();
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            faults: Mutex::new(Faults::default()),
            outage: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
            open: Mutex::default(),
            watches: Mutex::default(),
            next_conn: AtomicU64::new(0),
            upstream: Upstream {
                addr,
                name: ServerName::IpAddress(addr.ip().into()),
                tls: Arc::new(tls),
            },
            server: Arc::new(server_config),
        });
        {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = shared.clone();
                    std::thread::spawn(move || serve(stream, &shared));
                }
            });
        }

        // The same kubeconfig, pointed at the proxy and trusting its CA.
        let ca_pem = std::fs::read(&ca_file).unwrap();
        for cluster in kubeconfig["clusters"].as_array_mut().expect("clusters") {
            cluster["cluster"]["server"] = format!("https://{local}").into();
            cluster["cluster"]["certificate-authority-data"] =
                base64::engine::general_purpose::STANDARD
                    .encode(&ca_pem)
                    .into();
        }
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, kubeconfig.to_string()).unwrap();
        FaultProxy {
            shared,
            addr: local,
            kubeconfig: path,
            _dir: dir,
        }
    }

    /// A kubeconfig that reaches the API server through this proxy.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The faults for the requests from now on.
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap() = faults;
    }

    /// While on, every request is answered 503 by the proxy (the API server unreachable
    /// behind a load balancer), and the open connections are cut when it starts.
    pub fn set_outage(&self, on: bool) {
        self.shared.outage.store(on, Ordering::SeqCst);
        if on {
            self.cut_all();
        }
    }

    /// Cuts every open connection (watches included, counted in [`Stats::watches_cut`]) at
    /// once.
    pub fn cut_all(&self) {
        let open = std::mem::take(&mut *self.shared.open.lock().unwrap());
        let watches = self.shared.watches.lock().unwrap();
        let cut = open.keys().filter(|id| watches.contains(id)).count();
        self.shared
            .counters
            .watches_cut
            .fetch_add(cut as u64, Ordering::SeqCst);
        drop(watches);
        for s in open.values().flatten() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let n = |a: &AtomicU64| a.load(Ordering::SeqCst);
        Stats {
            requests: n(&c.requests),
            errors: n(&c.errors),
            drops: n(&c.drops),
            lost_answers: n(&c.lost_answers),
            delayed: n(&c.delayed),
            watches_cut: n(&c.watches_cut),
            expired: n(&c.expired),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the stop.
        let _ = TcpStream::connect(self.addr);
        self.cut_all();
    }
}

/// SplitMix64: a well-mixed value for (seed, n), so that fault decisions are independent of
/// each other and the same on every run.
fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed
        .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug, PartialEq, Eq)]
enum Fault {
    Pass,
    Error(u16),
    Drop,
    LoseAnswer,
}

/// The fault for request `n`, and how long to delay it and (for a watch) when to cut it.
fn decide(f: &Faults, n: u64, watch: bool) -> (Fault, Option<Duration>, Option<Duration>) {
    let r = |salt: u64| mix(f.seed ^ salt, n);
    let roll = (r(1) % 1000) as u32;
    let fault = if roll < f.error {
        Fault::Error([500, 503, 429][(r(2) % 3) as usize])
    } else if roll < f.error + f.drop {
        Fault::Drop
    } else if roll < f.error + f.drop + f.lose_answer && !watch {
        Fault::LoseAnswer
    } else {
        Fault::Pass
    };
    let within = |max: Duration, salt: u64| {
        let ms = max.as_millis().max(1) as u64;
        Duration::from_millis(r(salt) % ms + 1)
    };
    let delay = ((r(3) % 1000) as u32) < f.delay;
    let cut = watch && ((r(4) % 1000) as u32) < f.cut_watch;
    (
        fault,
        delay.then(|| within(f.max_delay, 5)),
        cut.then(|| within(f.max_watch, 6)),
    )
}

type ServerTls = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;
type ClientTls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn serve(stream: TcpStream, shared: &Arc<Shared>) {
    let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    shared.open.lock().unwrap().insert(id, vec![clone]);
    let _ = handle(id, stream, shared);
    if let Some(socks) = shared.open.lock().unwrap().remove(&id) {
        for s in socks {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
    shared.watches.lock().unwrap().remove(&id);
}

/// Reads one request, applies its fault and forwards it; the connection is closed after.
fn handle(id: u64, stream: TcpStream, shared: &Arc<Shared>) -> std::io::Result<()> {
    let conn =
        rustls::ServerConnection::new(shared.server.clone()).map_err(std::io::Error::other)?;
    let mut down = rustls::StreamOwned::new(conn, stream);
    let Some((head, body)) = read_request(&mut down)? else {
        return Ok(());
    };
    let n = shared.counters.requests.fetch_add(1, Ordering::SeqCst);
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    let watch = request_line.contains("watch=true") || request_line.contains("watch=1");
    let c = &shared.counters;
    if shared.outage.load(Ordering::SeqCst) {
        c.errors.fetch_add(1, Ordering::SeqCst);
        return answer_error(&mut down, 503);
    }
    let faults = shared.faults.lock().unwrap().clone();
    let (fault, delay, cut) = decide(&faults, n, watch);
    if let Some(d) = delay {
        c.delayed.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(d);
    }
    match fault {
        Fault::Error(code) => {
            c.errors.fetch_add(1, Ordering::SeqCst);
            return answer_error(&mut down, code);
        }
        Fault::Drop => {
            c.drops.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        Fault::Pass | Fault::LoseAnswer => {}
    }

    let sock = TcpStream::connect(shared.upstream.addr)?;
    if let Ok(clone) = sock.try_clone() {
        match shared.open.lock().unwrap().get_mut(&id) {
            Some(socks) => socks.push(clone),
            // Cut while it was being set up.
            None => return Ok(()),
        }
    }
    let conn =
        rustls::ClientConnection::new(shared.upstream.tls.clone(), shared.upstream.name.clone())
            .map_err(std::io::Error::other)?;
    let mut up: ClientTls = rustls::StreamOwned::new(conn, sock);
    up.write_all(forwarded_head(&head).as_bytes())?;
    up.write_all(&body)?;
    up.flush()?;
    if watch {
        shared.watches.lock().unwrap().insert(id);
    }
    if let Some(after) = cut {
        let shared = shared.clone();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            if let Some(socks) = shared.open.lock().unwrap().remove(&id) {
                shared.counters.watches_cut.fetch_add(1, Ordering::SeqCst);
                for s in socks {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        });
    }
    let lose = fault == Fault::LoseAnswer;
    let mut buf = vec![0u8; 16 * 1024];
    // The end of the previous chunk, so a marker split across two reads is still seen.
    let mut tail: Vec<u8> = Vec::new();
    let mut expired = false;
    loop {
        let got = match up.read(&mut buf) {
            Ok(0) => break,
            Ok(got) => got,
            // The API server closes after its answer without a TLS close_notify at times.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        };
        if !expired {
            tail.extend_from_slice(&buf[..got]);
            if contains(&tail, b"\"code\":410") {
                expired = true;
                c.expired.fetch_add(1, Ordering::SeqCst);
            }
            let keep = tail.len().saturating_sub(16);
            tail.drain(..keep);
        }
        if !lose {
            down.write_all(&buf[..got])?;
            down.flush()?;
        }
    }
    if lose {
        c.lost_answers.fetch_add(1, Ordering::SeqCst);
        return Ok(());
    }
    down.conn.send_close_notify();
    let _ = down.flush();
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The request head and body (`Content-Length` framing: kube's requests always carry one),
/// or `None` when the client closed without sending a request.
fn read_request(down: &mut ServerTls) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let got = match down.read(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(got) => got,
            // A connection opened and closed again (or cut) before a request.
            Err(_) if data.is_empty() => return Ok(None),
            Err(e) => return Err(e),
        };
        data.extend_from_slice(&buf[..got]);
    };
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "the fault proxy reads Content-Length bodies only: {head}"
    );
    let mut body = data[end..].to_vec();
    while body.len() < length {
        let got = down.read(&mut buf)?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&buf[..got]);
    }
    Ok(Some((head, body)))
}

/// The head as sent on to the API server: asking it to close after its answer.
fn forwarded_head(head: &str) -> String {
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or_default();
        if name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("keep-alive") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

/// An error answer as the API server writes them (a `Status` object), so clients take it
/// for one.
fn answer_error(down: &mut ServerTls, code: u16) -> std::io::Result<()> {
    let (text, reason) = match code {
        429 => ("Too Many Requests", "TooManyRequests"),
        503 => ("Service Unavailable", "ServiceUnavailable"),
        _ => ("Internal Server Error", "InternalError"),
    };
    let mut details = serde_json::json!({});
    let mut retry = String::new();
    if code == 429 {
        details = serde_json::json!({"retryAfterSeconds": 1});
        retry = "Retry-After: 1\r\n".to_owned();
    }
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "injected by the test's fault proxy",
        "reason": reason,
        "details": details,
        "code": code,
    })
    .to_string();
    write!(
        down,
        "HTTP/1.1 {code} {text}\r\nContent-Type: application/json\r\n{retry}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    down.conn.send_close_notify();
    down.flush()
}

/// A CA and a certificate for 127.0.0.1 signed by it (P-256: made in milliseconds); returns
/// the CA file.
fn make_certificates(dir: &Path) -> PathBuf {
    crate::certs::ca_and_server(
        dir,
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/CN=enseal fault proxy CA",
        "/CN=fault proxy",
        "IP:127.0.0.1,DNS:localhost",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_faults_and_the_shares_are_kept() {
        let f = Faults {
            seed: 7,
            error: 100,
            drop: 50,
            lose_answer: 50,
            delay: 200,
            max_delay: Duration::from_millis(300),
            cut_watch: 0,
            max_watch: Duration::ZERO,
        };
        let run = || {
            (0..10_000)
                .map(|n| decide(&f, n, false))
                .collect::<Vec<_>>()
        };
        let (a, b) = (run(), run());
        assert_eq!(a, b);
        let count = |pred: &dyn Fn(&Fault) -> bool| a.iter().filter(|(x, _, _)| pred(x)).count();
        let errors = count(&|x| matches!(x, Fault::Error(_)));
        let drops = count(&|x| *x == Fault::Drop);
        let lost = count(&|x| *x == Fault::LoseAnswer);
        assert!((800..1200).contains(&errors), "{errors}");
        assert!((350..650).contains(&drops), "{drops}");
        assert!((350..650).contains(&lost), "{lost}");
        let delayed = a.iter().filter(|(_, d, _)| d.is_some()).count();
        assert!((1700..2300).contains(&delayed), "{delayed}");
        assert!(a
            .iter()
            .filter_map(|(_, d, _)| *d)
            .all(|d| d <= Duration::from_millis(300)));
        let other = Faults {
            seed: 8,
            ..f.clone()
        };
        assert_ne!(
            a,
            (0..10_000)
                .map(|n| decide(&other, n, false))
                .collect::<Vec<_>>()
        );
        // A watch's answer is never the one thrown away (it never ends).
        assert!((0..10_000).all(|n| decide(&f, n, true).0 != Fault::LoseAnswer));
    }
}
