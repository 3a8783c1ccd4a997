//! The Lambda Runtime API loop: one event at a time, the synchronous engine on a blocking
//! thread, the invocation's deadline bounding every IdP call.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::sync::{Arc, Mutex};

use lambda_runtime::layers::TracingLayer;
use lambda_runtime::{Diagnostic, LambdaEvent, Runtime, service_fn};
use serde_json::Value;
use tokenbridge_core::Engine;

use crate::authorizer::{self, Options};
use crate::emf::{self, EmfLayer, Flusher};

/// The variables `lambda_runtime` needs; it panics without them, so they are checked first.
pub const REQUIRED_ENV: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
];

/// Why the runtime loop could not start, or ended.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0} is not set: `tokenbridge lambda` runs inside AWS Lambda (or its emulator)")]
    NotInLambda(&'static str),
    #[error("{0}")]
    Settings(String),
    #[error("cannot start the async runtime: {0}")]
    AsyncRuntime(std::io::Error),
    /// The Runtime API client ended with an error of its own, shown as it words it.
    #[error("{0}")]
    Runtime(lambda_runtime::Error),
}

/// Serves invocations until the runtime ends.
pub fn run(engine: &'static Engine, options: Options) -> Result<(), RuntimeError> {
    if let Some(missing) = REQUIRED_ENV.iter().find(|k| std::env::var_os(k).is_none()) {
        return Err(RuntimeError::NotInLambda(missing));
    }
    let flusher = Arc::new(Mutex::new(Flusher::new(emf::Settings::from_env().map_err(RuntimeError::Settings)?)));
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(RuntimeError::AsyncRuntime)?;
    runtime.block_on(async move {
        flush_at_shutdown(flusher.clone());
        let handler = service_fn(move |event: LambdaEvent<Value>| {
            let options = options.clone();
            async move { handle(engine, &options, event).await }
        });
        // As `lambda_runtime::run` builds it, with the metrics' flush outermost: after the answer
        // is posted.
        let runtime = Runtime::new(handler).layer(TracingLayer::new()).layer(EmfLayer(flusher));
        runtime.run().await.map_err(RuntimeError::Runtime)
    })
}

/// Lambda sends the runtime SIGTERM before it shuts an environment down — when an extension is
/// registered, as the Parameters and Secrets extension is — and allows it a few hundred
/// milliseconds: enough to write what was counted since the last flush. Without an extension
/// Lambda sends no signal, and those counts (at most one interval's) are lost.
fn flush_at_shutdown(flusher: emf::Shared) {
    use tokio::signal::unix::{SignalKind, signal};
    // Without the handler SIGTERM still ends the process, as it did before: only the flush is lost.
    let Ok(mut terminate) = signal(SignalKind::terminate()) else { return };
    tokio::spawn(async move {
        if terminate.recv().await.is_some() {
            emf::flush_now(&flusher);
            std::process::exit(0);
        }
    });
}

async fn handle(engine: &'static Engine, options: &Options, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let deadline = deadline_instant(event.context.deadline);
    let call_id = event.context.request_id.clone();
    let (mut request, form) = authorizer::parse(event.payload, options)
        .map_err(|e| Diagnostic { error_type: "InvalidEvent".into(), error_message: e.0 })?;
    request.deadline = deadline;
    request.call_id = Some(call_id);
    // The invocation's X-Ray trace (Lambda-Runtime-Trace-Id), after a W3C one the event carried.
    if let Some(xray) = event.context.xray_trace_id.as_deref() {
        request.trace = std::mem::take(&mut request.trace).or(tokenbridge_core::TraceContext::from_xray(xray));
    }
    let routes = authorizer::wants_routes(&form, options);
    let decision = tokio::task::spawn_blocking(move || {
        if routes { engine.decide_routes(&request) } else { engine.decide(&request).into() }
    })
    .await
    .map_err(|_| Diagnostic {
        error_type: "Unavailable".into(),
        error_message: "tokenbridge could not decide".into(),
    })?;
    authorizer::render_routes(&decision, &form, options)
}

/// Lambda runs a function for 15 minutes at most.
const LONGEST_INVOCATION_MS: u64 = 15 * 60 * 1000;

/// The invocation's deadline (milliseconds since the epoch) as a monotonic instant. A deadline
/// that is not a plausible time in the next 15 minutes is ignored (emulators send a duration
/// there): the configured timeouts still bound every call.
fn deadline_instant(deadline_ms: u64) -> Option<Instant> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let left = deadline_ms.checked_sub(now_ms).filter(|left| *left <= LONGEST_INVOCATION_MS)?;
    Some(Instant::now() + Duration::from_millis(left))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_implausible_deadline_is_ignored() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        assert!(deadline_instant(600_000).is_none(), "a duration, as the emulator sends");
        assert!(deadline_instant(now_ms + 3_600_000).is_none());
        let soon = deadline_instant(now_ms + 3_000).unwrap();
        assert!(soon > Instant::now() + Duration::from_millis(2_000));
    }
}
