//! A TCP forwarder the tests can cut and restore: the nearest real thing to
//! pulling a database's network cable, since the shared PostgreSQL on this
//! machine must keep serving the other tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

pub struct Proxy {
    pub port: u16,
    target: String,
    up: Arc<AtomicBool>,
    tasks: JoinSet<()>,
}

impl Proxy {
    /// Forwards a free local port to `target` ("host:port").
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let mut proxy = Self {
            port,
            target: target.to_owned(),
            up: Arc::new(AtomicBool::new(true)),
            tasks: JoinSet::new(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target.clone();
        let up = self.up.clone();
        self.tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up.load(Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&mut self) {
        self.up.store(false, Ordering::SeqCst);
        // Aborting the accept task drops the listener and, with it, the set
        // of forwarding tasks: every connection closes.
        self.tasks.abort_all();
    }

    /// Listens again on the same port.
    pub async fn restore(&mut self) {
        self.up.store(true, Ordering::SeqCst);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        };
        self.serve(listener);
    }
}
