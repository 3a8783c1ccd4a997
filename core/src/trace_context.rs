//! The platform's trace context, carried into every IdP call of a decision and into its log
//! line, so an operator can follow one gateway request through tokenbridge to the IdPs: W3C
//! `traceparent`, AWS X-Ray's trace header, OCI's `opc-request-id`.
//!
//! ```
//! use tokenbridge_core::TraceContext;
//!
//! let trace = TraceContext::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
//! assert_eq!(trace.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
//! assert_eq!(TraceContext::from_traceparent("00-zz"), TraceContext::default(), "malformed: not carried");
//! ```
//!
//! Values are carried only in a form checked here, rebuilt from their parts, so a client-chosen
//! header can add nothing to an IdP request but a well-formed trace context. tokenbridge makes no
//! spans of its own: the IdP calls carry the caller's context unchanged (W3C §3.2's "forward").

use std::cell::RefCell;

/// The trace context of one decision; any part may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    /// A W3C `traceparent` (version 00), as checked.
    traceparent: Option<String>,
    /// An AWS X-Ray trace header (`Root=1-…;Parent=…;Sampled=…`), rebuilt from its parts.
    xray: Option<String>,
    /// OCI's request id.
    opc_request_id: Option<String>,
}

impl TraceContext {
    /// A W3C `traceparent` (`00-<trace-id>-<parent-id>-<flags>`); anything else is none.
    pub fn from_traceparent(value: &str) -> Self {
        TraceContext { traceparent: traceparent(value.trim()), ..Self::default() }
    }

    /// An X-Ray trace header, as Lambda's `_X_AMZN_TRACE_ID` or an ALB's `X-Amzn-Trace-Id`
    /// holds it; anything without a well-formed `Root` is none.
    pub fn from_xray(value: &str) -> Self {
        TraceContext { xray: xray(value.trim()), ..Self::default() }
    }

    /// OCI's `opc-request-id`: letters, digits and `-_./`, at most 128 characters.
    pub fn from_opc_request_id(value: &str) -> Self {
        let ok = !value.is_empty()
            && value.len() <= 128
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
        TraceContext { opc_request_id: ok.then(|| value.to_string()), ..Self::default() }
    }

    /// This context, with the parts `other` has and this one lacks.
    pub fn or(self, other: TraceContext) -> Self {
        TraceContext {
            traceparent: self.traceparent.or(other.traceparent),
            xray: self.xray.or(other.xray),
            opc_request_id: self.opc_request_id.or(other.opc_request_id),
        }
    }

    /// The id the decision log names: the W3C trace id, else X-Ray's root, else OCI's request id.
    pub fn trace_id(&self) -> Option<&str> {
        let w3c = self.traceparent.as_deref().and_then(|t| t.get(3..35));
        let xray = self.xray.as_deref().and_then(|x| x.strip_prefix("Root=")).map(|x| x.split(';').next().unwrap_or(x));
        w3c.or(xray).or(self.opc_request_id.as_deref())
    }

    /// The headers an IdP call carries.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [("traceparent", &self.traceparent), ("X-Amzn-Trace-Id", &self.xray), ("opc-request-id", &self.opc_request_id)]
            .into_iter()
            .filter_map(|(name, value)| Some((name, value.as_deref()?)))
    }

    fn is_empty(&self) -> bool {
        self.traceparent.is_none() && self.xray.is_none() && self.opc_request_id.is_none()
    }
}

fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// W3C Trace Context §3.2: version `00`, a 32-digit trace id and a 16-digit parent id that are
/// not all zeros, two flag digits; lower-case hex only.
fn traceparent(value: &str) -> Option<String> {
    let mut parts = value.split('-');
    let (Some(version), Some(trace), Some(parent), Some(flags), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let zeros = |s: &str| s.bytes().all(|b| b == b'0');
    let ok = version == "00"
        && lower_hex(trace, 32)
        && !zeros(trace)
        && lower_hex(parent, 16)
        && !zeros(parent)
        && lower_hex(flags, 2);
    ok.then(|| value.to_string())
}

/// X-Ray: `Root=1-<8 hex>-<24 hex>`, with an optional `Parent=<16 hex>` and `Sampled=0|1|?`;
/// other fields are dropped.
fn xray(value: &str) -> Option<String> {
    let field = |name: &str| value.split(';').find_map(|f| f.trim().strip_prefix(name));
    let root = field("Root=")?;
    let mut parts = root.split('-');
    let (Some("1"), Some(time), Some(id), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    if !lower_hex(time, 8) || !lower_hex(id, 24) {
        return None;
    }
    let mut out = format!("Root={root}");
    if let Some(parent) = field("Parent=").filter(|p| lower_hex(p, 16)) {
        out.push_str(&format!(";Parent={parent}"));
    }
    if let Some(sampled) = field("Sampled=").filter(|s| matches!(*s, "0" | "1" | "?")) {
        out.push_str(&format!(";Sampled={sampled}"));
    }
    Some(out)
}

thread_local! {
    /// The context of the decision this thread is making: the core is synchronous, so a decision
    /// and its IdP calls run on one thread.
    static CURRENT: RefCell<TraceContext> = RefCell::new(TraceContext::default());
}

/// Runs `decide` with `context` as this thread's current trace context.
pub(crate) fn within<T>(context: &TraceContext, decide: impl FnOnce() -> T) -> T {
    if context.is_empty() {
        return decide();
    }
    let previous = CURRENT.with(|c| c.replace(context.clone()));
    let out = decide();
    CURRENT.with(|c| *c.borrow_mut() = previous);
    out
}

/// Calls `f` with the current decision's trace context.
pub(crate) fn with_current<T>(f: impl FnOnce(&TraceContext) -> T) -> T {
    CURRENT.with(|c| f(&c.borrow()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_well_formed_traceparent_is_carried() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(TraceContext::from_traceparent(good).headers().collect::<Vec<_>>(), [("traceparent", good)]);
        for bad in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nX-Admin: 1",
            "",
        ] {
            assert_eq!(TraceContext::from_traceparent(bad), TraceContext::default(), "{bad:?}");
        }
    }

    #[test]
    fn an_xray_header_is_rebuilt_from_its_parts() {
        let lambda = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a:1";
        let t = TraceContext::from_xray(lambda);
        assert_eq!(
            t.headers().collect::<Vec<_>>(),
            [("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")]
        );
        assert_eq!(t.trace_id(), Some("1-5759e988-bd862e3fe1be46a994272793"));
        for bad in ["Root=2-5759e988-bd862e3fe1be46a994272793", "Parent=53995c3f42cd8ad8", "Root=1-5759e988-x"] {
            assert_eq!(TraceContext::from_xray(bad), TraceContext::default(), "{bad}");
        }
        let injected = TraceContext::from_xray("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=\r\nX: 1");
        assert_eq!(injected.headers().count(), 1);
        assert!(!injected.headers().any(|(_, v)| v.contains('\n')));
    }

    #[test]
    fn an_opc_request_id_is_plain_text() {
        assert_eq!(TraceContext::from_opc_request_id("ab12/CD-34.x_y").trace_id(), Some("ab12/CD-34.x_y"));
        assert_eq!(TraceContext::from_opc_request_id("a b"), TraceContext::default());
        assert_eq!(TraceContext::from_opc_request_id(&"a".repeat(129)), TraceContext::default());
    }

    #[test]
    fn the_current_context_is_the_decisions_and_is_restored_after_it() {
        let t = TraceContext::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let inside = within(&t, || with_current(|c| c.clone()));
        assert_eq!(inside, t);
        assert_eq!(with_current(|c| c.clone()), TraceContext::default());
    }
}
