//! A TCP proxy between authd and PostgreSQL that a test can cut and
//! restore, to play a database outage without touching the shared server.
//! Cut: every piped connection is dropped at once and the port stops
//! listening, so new connections are refused (what a client sees while
//! PostgreSQL restarts). Restore: the same port listens again.
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct FaultProxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    /// Bumped by each cut; pipes and the listener of an older epoch end.
    epoch: watch::Sender<u64>,
}

impl FaultProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (epoch, _) = watch::channel(0);
        let proxy = Self {
            addr,
            upstream,
            epoch,
        };
        proxy.listen(listener);
        proxy
    }

    pub fn cut(&self) {
        self.epoch.send_modify(|epoch| *epoch += 1);
    }

    pub async fn restore(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.listen(listener);
    }

    fn listen(&self, listener: TcpListener) {
        let upstream = self.upstream;
        let pipes = self.epoch.subscribe();
        let mut watching = self.epoch.subscribe();
        let epoch = *watching.borrow();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = watching.wait_for(|now| *now != epoch) => return,
                };
                if let Ok((inbound, _)) = accepted {
                    tokio::spawn(pipe(inbound, upstream, epoch, pipes.clone()));
                }
            }
        });
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

async fn pipe(
    mut inbound: TcpStream,
    upstream: SocketAddr,
    epoch: u64,
    mut watching: watch::Receiver<u64>,
) {
    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = watching.wait_for(|now| *now != epoch) => {}
    }
}
