//! The HTTP floor: a trivial axum handler served from this process, so a
//! scenario can be read against what HTTP alone costs on this machine with
//! the same client (the "≈ 36k/s here").
use std::net::SocketAddr;

pub async fn serve() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(url)
}
