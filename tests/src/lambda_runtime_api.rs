//! A fake AWS Lambda Runtime API on loopback, as the Lambda service offers it to a custom runtime:
//! `GET /2018-06-01/runtime/invocation/next` hands out queued events (with the request id and
//! deadline headers), `POST …/{id}/response` and `…/{id}/error` collect the answers.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tiny_http::{Header, Response, Server};

use crate::harness::Process;

/// What the function answered to one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Response(Value),
    /// `errorType`, `errorMessage`.
    Error(String, String),
}

#[derive(Default)]
struct State {
    queue: VecDeque<(String, Value, Duration)>,
    answers: HashMap<String, Answer>,
    init_error: Option<String>,
}

#[derive(Clone)]
pub struct FakeRuntimeApi {
    pub address: String,
    state: Arc<(Mutex<State>, Condvar)>,
    serial: Arc<AtomicU64>,
}

impl FakeRuntimeApi {
    pub fn start() -> Self {
        let server = Server::http("127.0.0.1:0").expect("bind fake Runtime API");
        let port = server.server_addr().to_ip().map(|a| a.port()).expect("port");
        let api =
            FakeRuntimeApi { address: format!("127.0.0.1:{port}"), state: Arc::default(), serial: Arc::default() };
        let handler = api.clone();
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                let handler = handler.clone();
                std::thread::spawn(move || handler.handle(request));
            }
        });
        api
    }

    /// The environment Lambda gives a function, pointing at this API.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.address.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", "tokenbridge-authorizer"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_REGION", "eu-west-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Starts `tokenbridge` with no arguments (the mode must come from the environment).
    pub fn start_function(&self, env: &[(String, String)]) -> Process {
        let mut all = self.env();
        all.extend(env.iter().cloned());
        // No arguments: the mode must come from AWS_LAMBDA_RUNTIME_API.
        Process::start(&[], &all)
    }

    /// Queues `event` with `deadline` to go, and waits for the answer.
    pub fn invoke(&self, event: &Value, deadline: Duration) -> Answer {
        let id = format!("req-{}", self.serial.fetch_add(1, Ordering::SeqCst));
        let (lock, signal) = &*self.state;
        lock.lock().unwrap_or_else(|p| p.into_inner()).queue.push_back((id.clone(), event.clone(), deadline));
        signal.notify_all();
        let started = Instant::now();
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(answer) = state.answers.remove(&id) {
                return answer;
            }
            if let Some(e) = &state.init_error {
                panic!("the function failed to initialise: {e}");
            }
            let left = Duration::from_secs(30).saturating_sub(started.elapsed());
            assert!(!left.is_zero(), "no answer to {id} within 30 s");
            state = signal.wait_timeout(state, left).map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
    }

    fn handle(&self, mut request: tiny_http::Request) {
        let url = request.url().to_string();
        let (lock, signal) = &*self.state;
        if url.ends_with("/runtime/invocation/next") {
            let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
            let (id, event, deadline) = loop {
                if let Some(next) = state.queue.pop_front() {
                    break next;
                }
                state = signal.wait(state).unwrap_or_else(|p| p.into_inner());
            };
            drop(state);
            let deadline_ms =
                SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis()) + deadline.as_millis();
            let mut response = Response::from_string(event.to_string());
            for (k, v) in [
                ("Lambda-Runtime-Aws-Request-Id", id.clone()),
                ("Lambda-Runtime-Deadline-Ms", deadline_ms.to_string()),
                (
                    "Lambda-Runtime-Invoked-Function-Arn",
                    "arn:aws:lambda:eu-west-1:123456789012:function:tokenbridge".into(),
                ),
                ("Content-Type", "application/json".into()),
            ] {
                if let Ok(h) = Header::from_bytes(k, v) {
                    response.add_header(h);
                }
            }
            let _ = request.respond(response);
            return;
        }
        let mut body = String::new();
        let _ = request.as_reader().read_to_string(&mut body);
        let parts: Vec<&str> = url.trim_start_matches('/').split('/').collect();
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        match parts.as_slice() {
            ["2018-06-01", "runtime", "invocation", id, "response"] => {
                let value = serde_json::from_str(&body).unwrap_or(Value::String(body.clone()));
                state.answers.insert(id.to_string(), Answer::Response(value));
            }
            ["2018-06-01", "runtime", "invocation", id, "error"] => {
                let v: Value = serde_json::from_str(&body).unwrap_or_default();
                let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                state.answers.insert(id.to_string(), Answer::Error(text("errorType"), text("errorMessage")));
            }
            ["2018-06-01", "runtime", "init", "error"] => state.init_error = Some(body),
            _ => {}
        }
        drop(state);
        signal.notify_all();
        let _ = request.respond(Response::from_string("{}").with_status_code(202));
    }
}
