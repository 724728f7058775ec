//! A TCP proxy that can be switched off, to take a service away from the
//! daemon and give it back: while off, it closes every connection it has
//! and every new one at once, as a network outage looks to a client.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A running proxy to one target.
pub struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    sent: Arc<Mutex<Vec<u8>>>,
}

/// Bytes of client requests kept for [`Proxy::requests`]: enough for the
/// request lines and headers of a test's calls.
const KEEP_SENT: usize = 1 << 20;

impl Proxy {
    /// Starts forwarding from a free loopback port to `target`, switched on or off.
    pub fn start(target: SocketAddr, up: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let up = Arc::new(AtomicBool::new(up));
        let open = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (on, streams, record) = (Arc::clone(&up), Arc::clone(&open), Arc::clone(&sent));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !on.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let mut kept = streams.lock().unwrap();
                kept.push(client.try_clone().expect("clone stream"));
                kept.push(server.try_clone().expect("clone stream"));
                drop(kept);
                pipe(
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                    Some(Arc::clone(&record)),
                );
                pipe(server, client, None);
            }
        });
        Proxy {
            addr,
            up,
            open,
            sent,
        }
    }

    /// What clients sent through the proxy so far (the first MiB), as text.
    pub fn requests(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().unwrap()).into_owned()
    }

    /// The URL to give a client in place of the target's.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches the service back on.
    pub fn on(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// Takes the service away, cutting the connections that are open.
    pub fn off(&self) {
        self.up.store(false, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` on a thread of its own until either side closes,
/// keeping a copy in `record` up to [`KEEP_SENT`] bytes.
fn pipe(mut from: TcpStream, mut to: TcpStream, record: Option<Arc<Mutex<Vec<u8>>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(record) = &record {
                        let mut kept = record.lock().unwrap();
                        let room = KEEP_SENT.saturating_sub(kept.len()).min(n);
                        kept.extend_from_slice(&buf[..room]);
                    }
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
