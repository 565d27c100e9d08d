//! Why this exists: "the callback endpoint refuses connections for 60 s" must be a real refusal
//! (connect fails with ECONNREFUSED, open connections are cut), not an HTTP error. A [`Gate`]
//! is a TCP forwarder on a fixed loopback port in front of the stub: closing it drops the
//! listener and every forwarded connection; opening it binds the same port again.

use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::net::{TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A closable TCP forwarder from a loopback port to `upstream`.
pub struct Gate {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Gate {
    /// A gate on a free loopback port, open.
    pub fn start(upstream: SocketAddr) -> Self {
        let port = crate::support::free_port();
        let g = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            upstream,
            task: Mutex::new(None),
        };
        g.open();
        g
    }

    /// The gate's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts accepting (and forwarding) connections again.
    pub fn open(&self) {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket.bind(self.addr).expect("bind the gate's port");
        let listener = socket.listen(64).expect("listen");
        let upstream = self.upstream;
        let task = tokio::spawn(async move {
            // Dropping this set (when the task is aborted) aborts every forwarded connection.
            let mut conns = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                while conns.try_join_next().is_some() {}
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Refuses connections and cuts the open ones.
    pub fn close(&self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
    }
}
