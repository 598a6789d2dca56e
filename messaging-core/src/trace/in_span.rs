//! [`InSpan`]: a future run inside a span, for the spans the core makes per
//! message.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tracing::Span;

pin_project! {
    /// `inner` polled inside `span`, as `tracing::Instrumented` does, with one
    /// difference: the span closes as soon as `inner` completes, and is not entered
    /// again to drop the finished future. `Instrumented` enters its span on drop so
    /// that a future cancelled mid-way drops its state inside it; per message, that
    /// second enter and exit is about a seventh of what the span costs in a registry
    /// (measured with callgrind, docs/observability.md "Overhead"). Here a future
    /// dropped before it completes (an RPC call timed out, a listener stopped) drops
    /// its state outside the span, which only matters to logs written by a `Drop`.
    #[must_use = "a future does nothing unless polled"]
    pub(crate) struct InSpan<F> {
        #[pin]
        inner: F,
        span: Span,
    }
}

impl<F: Future> Future for InSpan<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let polled = {
            let _entered = this.span.enter();
            this.inner.poll(cx)
        };
        if polled.is_ready() {
            // Closed now, not when the caller gets round to dropping the future.
            *this.span = Span::none();
        }
        polled
    }
}

/// `.in_span(span)` on every future.
pub(crate) trait RunInSpan: Future + Sized {
    /// Run `self` inside `span` (see [`InSpan`]).
    fn in_span(self, span: Span) -> InSpan<Self> {
        InSpan { inner: self, span }
    }
}

impl<F: Future> RunInSpan for F {}

#[cfg(test)]
mod tests {
    use super::RunInSpan;
    use std::sync::{Arc, Mutex};
    use tracing::span::{Attributes, Id};
    use tracing::Subscriber;
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
    use tracing_subscriber::registry::LookupSpan;

    /// What happened to spans, in order.
    #[derive(Clone, Default)]
    struct Journal(Arc<Mutex<Vec<String>>>);

    impl<S> Layer<S> for Journal
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
            let name = attrs.metadata().name();
            self.0.lock().unwrap().push(format!("new {name}"));
        }
        fn on_enter(&self, _: &Id, _: Context<'_, S>) {
            self.0.lock().unwrap().push("enter".into());
        }
        fn on_exit(&self, _: &Id, _: Context<'_, S>) {
            self.0.lock().unwrap().push("exit".into());
        }
        fn on_close(&self, _: Id, _: Context<'_, S>) {
            self.0.lock().unwrap().push("close".into());
        }
        fn on_event(&self, _: &tracing::Event<'_>, ctx: Context<'_, S>) {
            let current = ctx.lookup_current().map(|s| s.name()).unwrap_or("none");
            self.0.lock().unwrap().push(format!("event in {current}"));
        }
    }

    #[tokio::test]
    async fn the_future_runs_inside_the_span_which_closes_when_it_completes() {
        let journal = Journal::default();
        let subscriber = tracing_subscriber::registry().with(journal.clone());
        let _default = tracing::subscriber::set_default(subscriber);
        let span = tracing::info_span!("job");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let job = async move {
            tracing::info!("before");
            rx.await.unwrap();
            tracing::info!("after");
            7
        }
        .in_span(span);
        let mut job = Box::pin(job);
        assert!(futures::poll!(job.as_mut()).is_pending());
        tx.send(()).unwrap();
        assert_eq!(job.as_mut().await, 7);
        let seen = journal.0.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                "new job",
                "enter",
                "event in job",
                "exit",
                "enter",
                "event in job",
                "exit",
                "close"
            ],
            "closed at completion, before the future is dropped"
        );
        drop(job);
        assert_eq!(
            journal.0.lock().unwrap().len(),
            seen.len(),
            "nothing on drop"
        );
    }
}
