//! A plain TCP forwarder: every connection accepted on `listen` is joined byte for byte to a
//! new connection to `target`. It lets a process in a test's network namespace
//! ([`crate::netns`]) reach the test API server, which listens on 127.0.0.1 only; TLS passes
//! through untouched, so the client checks the API server's own certificate.
//!
//! Blocking threads (two per connection), as the other fakes in this crate: the test crate's
//! tokio has no networking features of its own. Dropping it stops accepting and cuts every
//! open connection, so no thread outlives the test for long.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub struct TcpForward {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl TcpForward {
    /// Listens on `listen` (port 0: any free one) and forwards to `target`.
    pub fn start(listen: SocketAddr, target: SocketAddr) -> TcpForward {
        let listener = TcpListener::bind(listen)
            .unwrap_or_else(|e| panic!("the forwarder cannot listen on {listen}: {e}"));
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let acceptor = {
            let (stop, open) = (stop.clone(), open.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    // A refused upstream closes the client's connection, as a dead server
                    // would.
                    let Ok(upstream) = TcpStream::connect(target) else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    if let (Ok(c), Ok(u)) = (client.try_clone(), upstream.try_clone()) {
                        let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
                        open.retain(|s| s.peer_addr().is_ok());
                        open.extend([c, u]);
                    }
                    join(client, upstream);
                }
            })
        };
        TcpForward {
            addr,
            stop,
            open,
            acceptor: Some(acceptor),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Copies each direction on a thread of its own; when one side ends its stream, the end is
/// passed on (a half close), and the other direction carries on until it ends too.
fn join(a: TcpStream, b: TcpStream) {
    for (from, to) in [(&a, &b), (&b, &a)] {
        let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
            return;
        };
        std::thread::spawn(move || {
            let _ = copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    }
}

fn copy(from: &mut TcpStream, to: &mut TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
    }
}

impl Drop for TcpForward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked accept so that it sees `stop`.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for s in self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_go_both_ways_and_a_half_close_is_passed_on() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            s.write_all(&got).unwrap();
        });
        let fwd = TcpForward::start("127.0.0.1:0".parse().unwrap(), target);
        let mut c = TcpStream::connect(fwd.addr()).unwrap();
        c.write_all(b"hello through the forwarder").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"hello through the forwarder");
        echo.join().unwrap();
    }
}
