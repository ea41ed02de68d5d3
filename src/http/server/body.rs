//! A request body that must arrive in full within a deadline. A client that
//! sends its body a byte at a time (slow POST) cannot hold a connection and
//! a handler open for longer than `http.body_read_timeout_secs`: the next
//! read fails with `BodyTimedOut`, which the extractors answer with
//! `408 request_timeout`.
use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body did not arrive within the deadline.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

impl BodyTimedOut {
    /// Whether `error` or anything in its source chain is a `BodyTimedOut`:
    /// extractors see it wrapped in their own rejection types.
    pub fn is_cause_of(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut current = Some(error);
        while let Some(e) = current {
            if e.is::<BodyTimedOut>() {
                return true;
            }
            current = e.source();
        }
        false
    }
}

pin_project! {
    pub struct DeadlineBody<B> {
        #[pin]
        inner: B,
        #[pin]
        deadline: Sleep,
    }
}

impl<B> DeadlineBody<B> {
    /// The clock starts now, when the request head has been read.
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: tokio::time::sleep(timeout),
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match this.deadline.poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body whose next frame never comes.
    struct Stalled;

    impl Body for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_fails_at_the_deadline() {
        let body = DeadlineBody::new(Stalled, Duration::from_secs(10));
        let error = body.collect().await.err();
        assert!(error.is_some_and(|e| BodyTimedOut::is_cause_of(&*e)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_body_passes_through() {
        let full = http_body_util::Full::new(Bytes::from_static(b"{}"));
        let body = DeadlineBody::new(full, Duration::from_secs(10));
        let bytes = body.collect().await.ok().map(|c| c.to_bytes());
        assert_eq!(bytes.as_deref(), Some(&b"{}"[..]));
    }
}
