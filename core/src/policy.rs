//! Per-route authorization: an ordered list of routes (method + path pattern), each requiring
//! scopes (all-of or any-of), issuers and audiences; the first route that matches decides, and
//! unmatched requests get the default (deny unless configured).
//!
//! ```json
//! {"routes": [
//!    {"method": "GET",  "path": "/orders/*",  "scopes": ["orders.read"]},
//!    {"method": "POST", "path": "/orders",    "scopes": ["orders.write"], "issuers": ["https://idp.example"]},
//!    {"method": "*",    "path": "/admin/**",  "scopes": ["admin", "root"], "scope_match": "any", "introspect": true},
//!    {"method": "*",    "path": "/hr/**",     "scopes": ["hr"], "backend": "hr",
//!     "claims": [{"claim": "/realm_access/roles", "contains_any": ["hr-staff"]}]}
//!  ],
//!  "backends": {"hr": {"grant": "token_exchange", "audience": "hr-api"}},
//!  "default": "deny"}
//! ```
//!
//! A route's `backend` names the token IdP B is asked for on it; without one, the backend
//! token is the one `TOKENBRIDGE_BACKEND_*` describes. A route's `claims` are conditions on
//! the token's claims that must all hold (see `claims`).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::claims::Condition;
use crate::introspection::Identity;
use crate::outcome::{Denial, Route};
use crate::reason::Reason;
use crate::route_path;

/// What a route asks of a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub scopes: Vec<String>,
    pub scope_match: ScopeMatch,
    /// Accepted issuers; empty accepts any configured one.
    pub issuers: Vec<String>,
    /// Accepted audiences (any of them); empty accepts any.
    pub audiences: Vec<String>,
    /// Introspect even a valid JWT here, to catch revocation.
    pub introspect: bool,
    /// The policy's backend the backend token is asked for (an index into
    /// [`Policy::backends`]); `None`: the configured default backend.
    pub backend: Option<usize>,
    /// Conditions on the token's claims, all of which must hold.
    pub claims: Vec<Condition>,
    /// The route's DPoP mode, when it sets one (else `TOKENBRIDGE_DPOP`'s).
    pub dpop: Option<crate::dpop::Mode>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeMatch {
    #[default]
    All,
    Any,
}

/// A route or default as written in the document; unknown fields are errors, not ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    method: Option<String>,
    path: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    scope_match: ScopeMatch,
    #[serde(default)]
    issuers: Vec<String>,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    introspect: bool,
    backend: Option<String>,
    #[serde(default)]
    claims: Vec<serde_json::Value>,
    dpop: Option<crate::dpop::Mode>,
}

impl RuleDoc {
    /// The rule, its backend resolved among `backends`' names.
    fn rule(self, backends: &[(String, BackendDoc)]) -> Result<Rule, String> {
        let RuleDoc { scopes, scope_match, issuers, audiences, introspect, backend, claims, dpop, .. } = self;
        let claims = claims.iter().map(Condition::parse).collect::<Result<Vec<_>, _>>()?;
        let backend = match backend {
            None => None,
            Some(name) => Some(backends.iter().position(|(n, _)| *n == name).ok_or_else(|| {
                format!("a policy route names backend {name:?}, which the policy's \"backends\" do not define")
            })?),
        };
        Ok(Rule { scopes, scope_match, issuers, audiences, introspect, backend, claims, dpop })
    }
}

/// A backend of the policy: what IdP B is asked for on the routes that name it, at the
/// configured token endpoint with the configured client. Unset members are unset (a scope is
/// not inherited from `TOKENBRIDGE_BACKEND_SCOPE`); the grant is `client_credentials` unless
/// given. The configuration reads the values (see `config`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendDoc {
    pub grant: Option<String>,
    pub subject_token_type: Option<String>,
    pub requested_token_type: Option<String>,
    pub requested_token_use: Option<String>,
    pub actor_token: Option<String>,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub resource: Option<String>,
}

/// The default for requests no route matches.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
enum Fallback {
    /// `"deny"`
    Word(String),
    /// A rule, e.g. `{"scopes": []}` to allow any valid token.
    Rule(RuleDoc),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    routes: Vec<RuleDoc>,
    #[serde(default)]
    backends: BTreeMap<String, BackendDoc>,
    default: Option<Fallback>,
}

/// A loaded policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    routes: Vec<(String, Vec<String>, Rule)>,
    default: Option<Rule>,
    backends: Vec<(String, BackendDoc)>,
}

impl Policy {
    /// The zero-config policy: every route requires `scopes`.
    pub fn everywhere(scopes: Vec<String>) -> Self {
        Policy { routes: Vec::new(), default: Some(Rule { scopes, ..Rule::default() }), backends: Vec::new() }
    }

    /// Reads a JSON policy document, naming what is wrong with it.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let doc: Document = serde_json::from_str(text).map_err(|e| format!("the policy is not valid: {e}"))?;
        let backends: Vec<(String, BackendDoc)> = doc.backends.into_iter().collect();
        let default = match doc.default {
            None => None,
            Some(Fallback::Word(w)) if w == "deny" => None,
            Some(Fallback::Word(w)) => return Err(format!("policy default {w:?}: expected \"deny\" or a rule object")),
            Some(Fallback::Rule(r)) if r.method.is_some() || r.path.is_some() => {
                return Err("the policy default applies to every other route: it takes no method or path".into());
            }
            Some(Fallback::Rule(r)) => Some(r.rule(&backends).map_err(|e| format!("policy default: {e}"))?),
        };
        let mut routes = Vec::new();
        for r in doc.routes {
            let method = r.method.clone().unwrap_or_else(|| "*".into()).to_ascii_uppercase();
            let Some(path) = r.path.clone() else { return Err("every policy route needs a path".into()) };
            if !path.starts_with('/') && path != "*" {
                return Err(format!("policy route path {path:?} must start with /"));
            }
            if path.find("**").is_some_and(|pos| pos + 2 != path.len()) {
                return Err(format!("policy route path {path:?}: ** may only end a path"));
            }
            // Requests that are ambiguous are refused: such a route would never match.
            let segments = match pattern_segments(&path) {
                _ if path == "*" => vec!["**".to_string()],
                Some(segments) => segments,
                _ => {
                    return Err(format!(
                        "policy route path {path:?} can never match: requests with such paths are refused"
                    ));
                }
            };
            // Names compare folded, so `/Reports/**` before `/reports/**` would hide the second
            // (a case-sensitive backend's other resource): a route never reached is a mistake.
            let hidden_by = routes.iter().position(|(m, p, _): &(String, Vec<String>, Rule)| {
                (m == "*" || m == "ANY" || *m == method || (m == "GET" && method == "HEAD")) && covers(p, &segments)
            });
            if let Some(earlier) = hidden_by {
                return Err(format!(
                    "policy route {} ({method} {path}) is never reached: route {} before it matches all it matches",
                    routes.len() + 1,
                    earlier + 1
                ));
            }
            let rule =
                r.rule(&backends).map_err(|e| format!("policy route {} ({method} {path}): {e}", routes.len() + 1))?;
            routes.push((method, segments, rule));
        }
        let named = |i: usize| routes.iter().map(|(_, _, r)| r).chain(&default).any(|r| r.backend == Some(i));
        if let Some((unused, _)) = backends.iter().enumerate().find(|(i, _)| !named(*i)).map(|(_, b)| b) {
            return Err(format!("policy backend {unused:?} is named by no route"));
        }
        Ok(Policy { routes, default, backends })
    }

    /// The backends the policy defines, by name; routes name them by index.
    pub fn backends(&self) -> &[(String, BackendDoc)] {
        &self.backends
    }

    /// Whether decisions differ by route (a policy document with routes), so a gateway must not
    /// reuse one decision for other routes.
    pub fn has_routes(&self) -> bool {
        !self.routes.is_empty()
    }

    /// Every claim a condition reads (JSON Pointers), once each.
    pub fn claim_pointers(&self) -> Vec<String> {
        let mut pointers = Vec::new();
        for rule in self.routes.iter().map(|(_, _, r)| r).chain(&self.default) {
            rule.claims.iter().for_each(|c| c.pointers(&mut pointers));
        }
        let mut pointers: Vec<String> = pointers.into_iter().map(str::to_string).collect();
        pointers.sort();
        pointers.dedup();
        pointers
    }

    /// Whether any route (or the default) sets a DPoP mode other than off.
    pub fn uses_dpop(&self) -> bool {
        let on = |r: &Rule| r.dpop.is_some_and(|m| m != crate::dpop::Mode::Off);
        self.routes.iter().map(|(_, _, r)| r).chain(&self.default).any(on)
    }

    /// Whether any route asks for introspection of valid JWTs.
    pub fn wants_introspection(&self) -> bool {
        self.routes.iter().any(|(_, _, r)| r.introspect) || self.default.as_ref().is_some_and(|r| r.introspect)
    }

    /// The rule for a request: the first matching route, else the default.
    pub fn rule_for(&self, route: &Route) -> Result<&Rule, NoRule> {
        if self.routes.is_empty() {
            return self.default.as_ref().ok_or(NoRule::NotAllowed);
        }
        let path = match route.path.as_deref() {
            Some(p) => Some(route_path::segments(p).ok_or(NoRule::AmbiguousPath)?),
            None => None,
        };
        let Some(path) = path else { return self.default.as_ref().ok_or(NoRule::NotAllowed) };
        for (method, pattern, rule) in &self.routes {
            if !matches(pattern, &path) {
                continue;
            }
            match route.method.as_deref() {
                _ if method_covers(method, None) => return Ok(rule),
                // The path names a route for some methods only, and which one was called is not
                // known: no guess between a laxer and a stricter rule.
                None => return Err(NoRule::MethodUnknown),
                Some(called) if method_covers(method, Some(called)) => return Ok(rule),
                Some(_) => {}
            }
        }
        self.default.as_ref().ok_or(NoRule::NotAllowed)
    }

    /// A readable account of the policy, for `check-config`.
    pub fn describe(&self) -> String {
        let rule = |r: &Rule| {
            let mut parts = vec![format!(
                "scopes {} [{}]",
                if r.scope_match == ScopeMatch::All { "all of" } else { "any of" },
                r.scopes.join(" ")
            )];
            if !r.issuers.is_empty() {
                parts.push(format!("issuers [{}]", r.issuers.join(" ")));
            }
            if !r.audiences.is_empty() {
                parts.push(format!("audiences [{}]", r.audiences.join(" ")));
            }
            if r.introspect {
                parts.push("introspect".into());
            }
            if !r.claims.is_empty() {
                let conditions: Vec<String> = r.claims.iter().map(Condition::describe).collect();
                parts.push(format!("claims {}", conditions.join(" and ")));
            }
            if let Some(mode) = r.dpop {
                parts.push(format!("dpop {}", mode.as_str()));
            }
            if let Some((name, _)) = r.backend.and_then(|i| self.backends.get(i)) {
                parts.push(format!("backend {name}"));
            }
            parts.join(", ")
        };
        let mut out: Vec<String> =
            self.routes.iter().map(|(m, p, r)| format!("  {m} /{} → {}", p.join("/"), rule(r))).collect();
        out.push(match &self.default {
            Some(r) => format!("  anything else → {}", rule(r)),
            None => "  anything else → deny".into(),
        });
        out.join("\n")
    }
}

impl Rule {
    /// `Ok` if the identity satisfies the rule, else the denial to give.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn check(&self, identity: &Identity) -> Result<(), Denial> {
        self.refusal(identity).map_or(Ok(()), |r| Err(self.denial(r)))
    }

    /// Which of the rule's requirements the identity fails first, if any.
    pub fn refusal(&self, identity: &Identity) -> Option<Refusal> {
        if !self.issuers.is_empty() && !identity.issuer.as_ref().is_some_and(|i| self.issuers.contains(i)) {
            return Some(Refusal::IssuerOrAudience);
        }
        if !self.audiences.is_empty() && !identity.audiences.iter().any(|a| self.audiences.contains(a)) {
            return Some(Refusal::IssuerOrAudience);
        }
        let has = |s: &String| identity.scopes.contains(s);
        let scoped = match self.scope_match {
            ScopeMatch::All => self.scopes.iter().all(has),
            ScopeMatch::Any => self.scopes.is_empty() || self.scopes.iter().any(has),
        };
        if !scoped {
            return Some(Refusal::Scopes);
        }
        if !self.claims.iter().all(|c| c.holds(&identity.facts)) {
            return Some(Refusal::Claims);
        }
        None
    }

    /// The answer to a refusal: a token from elsewhere is invalid here (401); a token short of
    /// the route's scopes or claims is forbidden (403), naming the scopes when those are short.
    pub fn denial(&self, refusal: Refusal) -> Denial {
        match refusal {
            Refusal::IssuerOrAudience => Denial::InvalidToken,
            Refusal::Scopes => Denial::InsufficientScope { required: self.scopes.clone() },
            Refusal::Claims => Denial::InsufficientScope { required: Vec::new() },
        }
    }
}

/// The requirement of a rule a token fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Another issuer or audience than the route accepts.
    IssuerOrAudience,
    /// Short of the route's scopes.
    Scopes,
    /// A claim condition does not hold.
    Claims,
}

impl Refusal {
    /// The `reason` the decision log gives.
    pub fn reason(self) -> Reason {
        match self {
            Refusal::IssuerOrAudience => Reason::IssuerOrAudienceNotAcceptedHere,
            Refusal::Scopes => Reason::InsufficientScope,
            Refusal::Claims => Reason::ClaimConditionFailed,
        }
    }
}

/// Why no rule applies to a request; either way it is refused before any IdP is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRule {
    /// No route matches and the default is deny.
    NotAllowed,
    /// The path may name another resource to the backend than the one it seems to (dot segments,
    /// `%2F`, `%61`, `;`, `\`): refused rather than guessed at, when the policy has routes.
    AmbiguousPath,
    /// The path matches a route for some methods only, and the request names no method.
    MethodUnknown,
}

impl NoRule {
    /// The `reason` the decision log gives.
    pub fn reason(self) -> Reason {
        match self {
            NoRule::NotAllowed => Reason::RouteNotAllowed,
            NoRule::AmbiguousPath => Reason::AmbiguousPath,
            NoRule::MethodUnknown => Reason::MethodUnknown,
        }
    }
}

/// Whether a route's method covers the called one (`None`: any method). `GET` covers `HEAD`, as
/// RFC 9110 §9.3.2 and most frameworks (Go's ServeMux, Express, Flask, Spring) have a GET
/// handler answer HEAD.
fn method_covers(route: &str, called: Option<&str>) -> bool {
    match called {
        _ if route == "*" || route == "ANY" => true,
        None => false,
        Some(m) => m.eq_ignore_ascii_case(route) || (route == "GET" && m.eq_ignore_ascii_case("HEAD")),
    }
}

/// Whether every path pattern `b` matches, `a` matches too (so `a` before `b` hides `b`).
fn covers(a: &[String], b: &[String]) -> bool {
    match (a.first().map(String::as_str), b.first().map(String::as_str)) {
        (Some("**"), _) => true,
        (None, None) => true,
        (Some("*"), Some(s)) if s != "**" => covers(&a[1..], &b[1..]),
        (Some(x), Some(y)) if x == y => covers(&a[1..], &b[1..]),
        _ => false,
    }
}

/// A route pattern's segments: `*` and `**` as they are, the others read as request paths are.
fn pattern_segments(path: &str) -> Option<Vec<String>> {
    if !path.starts_with('/') {
        return None;
    }
    let segment = |s: &str| if s == "*" || s == "**" { Some(s.to_string()) } else { route_path::segment(s) };
    path.split('/').filter(|s| !s.is_empty()).map(segment).collect()
}

/// `*` matches one segment, a final `**` any number (including none). Both sides are folded
/// (`route_path`): a case-insensitive backend (Express, ASP.NET) serves `/ADMIN` as `/admin`,
/// and the stricter reading is the safe one.
fn matches(pattern: &[String], path: &[String]) -> bool {
    match (pattern.first().map(String::as_str), path.first()) {
        (Some("**"), _) => true,
        (Some("*"), Some(_)) => matches(&pattern[1..], &path[1..]),
        (Some(p), Some(s)) if p == s => matches(&pattern[1..], &path[1..]),
        (None, None) => true,
        _ => false,
    }
}

/// One entry of a policy's route table with one token's verdict on it, for adapters that answer
/// for every route at once (an IAM policy a gateway caches per token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteVerdict {
    /// The route's method (upper-cased; `*` or `ANY` for any) and its path pattern's segments,
    /// read as request paths are (decoded, folded; `*` one segment, a final `**` any number).
    /// `None` for the default, which is the last entry.
    pub route: Option<(String, Vec<String>)>,
    /// Whether the token satisfies the entry's rule ([`Rule::check`]); `false` for a default
    /// of `deny`.
    pub allowed: bool,
    /// The rule's backend ([`Rule::backend`]).
    pub backend: Option<usize>,
    /// The rule's [`Rule::introspect`].
    pub introspect: bool,
}

impl Policy {
    /// The route table in order, the default last, each entry judged by `satisfied` (the
    /// engine passes [`Rule::check`] for the caller's identity).
    pub fn route_table(&self, satisfied: impl Fn(&Rule) -> bool) -> Vec<RouteVerdict> {
        let verdict = |route, rule: &Rule| RouteVerdict {
            route,
            allowed: satisfied(rule),
            backend: rule.backend,
            introspect: rule.introspect,
        };
        let mut table: Vec<RouteVerdict> =
            self.routes.iter().map(|(m, p, rule)| verdict(Some((m.clone(), p.clone())), rule)).collect();
        table.push(match &self.default {
            Some(rule) => verdict(None, rule),
            None => RouteVerdict { route: None, allowed: false, backend: None, introspect: false },
        });
        table
    }

    /// The index in [`Policy::route_table`] of the entry that decides a request, as
    /// [`Policy::rule_for`] finds it.
    pub fn route_index(&self, route: &Route) -> Result<usize, NoRule> {
        let rule = self.rule_for(route)?;
        let index = self.routes.iter().position(|(_, _, r)| std::ptr::eq(r, rule));
        Ok(index.unwrap_or(self.routes.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> Route {
        Route { method: Some(method.into()), path: Some(path.into()), ..Route::default() }
    }

    fn identity(scopes: &[&str]) -> Identity {
        Identity {
            principal: "p".into(),
            client_id: None,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires_at: None,
            issuer: Some("https://idp.example".into()),
            audiences: vec!["api".into()],
            claims: Default::default(),
            facts: Default::default(),
            cnf: Default::default(),
            verified_locally: false,
        }
    }

    const DOC: &str = r#"{"routes": [
        {"method": "GET", "path": "/orders/*", "scopes": ["orders.read"]},
        {"method": "post", "path": "/orders", "scopes": ["orders.write"], "issuers": ["https://other"]},
        {"path": "/admin/**", "scopes": ["admin", "root"], "scope_match": "any", "introspect": true}
    ]}"#;

    #[test]
    fn the_first_matching_route_decides() {
        let p = Policy::from_json(DOC).unwrap();
        assert_eq!(p.rule_for(&route("GET", "/orders/7")).unwrap().scopes, ["orders.read"]);
        assert_eq!(p.rule_for(&route("get", "/orders/7")).unwrap().scopes, ["orders.read"]);
        assert_eq!(p.rule_for(&route("POST", "/orders")).unwrap().scopes, ["orders.write"]);
        assert!(p.rule_for(&route("DELETE", "/admin")).unwrap().introspect);
        assert!(p.rule_for(&route("GET", "/admin/a/b/c")).unwrap().introspect);
    }

    #[test]
    fn unmatched_and_routeless_requests_are_denied_by_default() {
        let p = Policy::from_json(DOC).unwrap();
        assert_eq!(p.rule_for(&route("GET", "/orders/7/items")), Err(NoRule::NotAllowed), "* is one segment");
        assert_eq!(p.rule_for(&route("PUT", "/orders")), Err(NoRule::NotAllowed));
        assert_eq!(p.rule_for(&Route::default()), Err(NoRule::NotAllowed));
    }

    #[test]
    fn paths_a_backend_could_read_as_another_route_are_refused() {
        let p =
            Policy::from_json(r#"{"routes": [{"path": "/admin/**", "scopes": ["admin"]}], "default": {"scopes": []}}"#)
                .unwrap();
        for path in [
            "/orders/../admin/users",
            "/orders/./x",
            "/orders/%2e%2e/admin/users",
            "/%61dmin/users",
            "/orders%2F..%2Fadmin",
            "/orders%5C..%5Cadmin",
            "/admin;jsessionid=1/users",
            "/orders\\..\\admin",
            "/orders/%252e%252e/admin",
            "/orders/%zz",
            "/orders/%4",
            "/orders/\u{0}",
            "/public#/../admin/users",
            "/admin./users",
            "/admin%20/users",
            "/%C0%AEadmin",
            "/caf%C3",
            "http://host/admin/users",
            "admin/users",
            "/strict%3F/x",
            "/strict%3f",
            "/strict%23/x",
            "/admin%25/x",
            "/orders/%2A",
            "/orders/*",
            "/public?/../admin",
            "/orders/7?next=x",
        ] {
            assert_eq!(p.rule_for(&route("GET", path)), Err(NoRule::AmbiguousPath), "{path}");
        }
        for path in ["/orders/caf%C3%A9", "/orders/a%20b", "/orders//7"] {
            assert_eq!(p.rule_for(&route("GET", path)).unwrap().scopes, Vec::<String>::new(), "{path}");
        }
    }

    /// Names a backend may fold into `/admin` (NFKC, Unicode case mapping) never fall through
    /// to the laxer default: they are refused.
    #[test]
    fn unicode_look_alikes_of_a_route_are_refused() {
        let p =
            Policy::from_json(r#"{"routes": [{"path": "/admin/**", "scopes": ["admin"]}], "default": {"scopes": []}}"#)
                .unwrap();
        for path in [
            "/ａｄｍｉｎ/users",
            "/%EF%BD%81dmin/users",
            "/admın/users",
            "/%C5%BFecrets",
            "/\u{212A}eys",
            "/\u{FB01}les",
            "/adm\u{0130}n",
            "/ad\u{200B}min",
        ] {
            assert_eq!(p.rule_for(&route("GET", path)), Err(NoRule::AmbiguousPath), "{path}");
        }
        assert_eq!(p.rule_for(&route("GET", "/ÄDMIN")).unwrap().scopes, Vec::<String>::new(), "another name");
    }

    #[test]
    fn a_get_route_covers_head() {
        let p = Policy::from_json(
            r#"{"routes": [{"method": "GET", "path": "/admin/**", "scopes": ["admin"]}], "default": {"scopes": []}}"#,
        )
        .unwrap();
        assert_eq!(p.rule_for(&route("HEAD", "/admin/x")).unwrap().scopes, ["admin"]);
        assert_eq!(p.rule_for(&route("head", "/admin/x")).unwrap().scopes, ["admin"]);
        assert_eq!(p.rule_for(&route("POST", "/admin/x")).unwrap().scopes, Vec::<String>::new());
    }

    #[test]
    fn a_path_of_method_specific_routes_without_a_method_is_refused() {
        let p = Policy::from_json(DOC).unwrap();
        let no_method = |path: &str| Route { path: Some(path.into()), ..Route::default() };
        assert_eq!(p.rule_for(&no_method("/orders/7")), Err(NoRule::MethodUnknown));
        assert!(p.rule_for(&no_method("/admin/x")).unwrap().introspect, "a route for every method needs none");
        assert_eq!(p.rule_for(&no_method("/elsewhere")), Err(NoRule::NotAllowed));
    }

    #[test]
    fn a_route_an_earlier_one_hides_is_a_configuration_error() {
        for doc in [
            r#"{"routes": [{"path": "/Reports/**"}, {"path": "/reports/**", "scopes": ["admin"]}]}"#,
            r#"{"routes": [{"path": "/a/**"}, {"method": "GET", "path": "/a/b"}]}"#,
            r#"{"routes": [{"path": "/a/*"}, {"path": "/a/b"}]}"#,
            r#"{"routes": [{"method": "GET", "path": "/a"}, {"method": "HEAD", "path": "/a"}]}"#,
        ] {
            assert!(Policy::from_json(doc).unwrap_err().contains("is never reached"), "{doc}");
        }
        for doc in [
            r#"{"routes": [{"path": "/a/b"}, {"path": "/a/**"}]}"#,
            r#"{"routes": [{"method": "GET", "path": "/a"}, {"method": "POST", "path": "/a"}]}"#,
            r#"{"routes": [{"path": "/a/*"}, {"path": "/a/**"}]}"#,
        ] {
            assert!(Policy::from_json(doc).is_ok(), "{doc}");
        }
    }

    #[test]
    fn route_names_match_without_regard_to_case() {
        let p =
            Policy::from_json(r#"{"routes": [{"path": "/admin/**", "scopes": ["admin"]}], "default": {"scopes": []}}"#)
                .unwrap();
        assert_eq!(p.rule_for(&route("GET", "/ADMIN/users")).unwrap().scopes, ["admin"]);
        assert_eq!(p.rule_for(&route("GET", "//Admin//users")).unwrap().scopes, ["admin"]);
    }

    #[test]
    fn one_resource_spelled_two_ways_meets_one_route() {
        let doc = r#"{"routes": [
            {"path": "/reports/annual report/**", "scopes": ["admin"]},
            {"path": "/café/**", "scopes": ["admin"]},
            {"path": "/v1/admin:purge", "scopes": ["admin"]},
            {"path": "/users/%40me", "scopes": ["admin"]}
        ], "default": {"scopes": []}}"#;
        let p = Policy::from_json(doc).unwrap();
        for path in [
            "/reports/annual%20report/x",
            "/reports/annual report/x",
            "/caf%C3%A9/x",
            "/café/x",
            "/CAF%C3%A9/x",
            "/v1/admin%3Apurge",
            "/v1/admin:purge",
            "/users/@me",
            "/users/%40me",
        ] {
            assert_eq!(p.rule_for(&route("GET", path)).unwrap().scopes, ["admin"], "{path}");
        }
    }

    #[test]
    fn a_policy_without_routes_does_not_read_the_path() {
        let p = Policy::everywhere(vec!["s".into()]);
        assert_eq!(p.rule_for(&route("GET", "/a/../b;c")).unwrap().scopes, ["s"]);
    }

    #[test]
    fn a_default_rule_applies_to_unmatched_requests() {
        let p = Policy::from_json(r#"{"routes": [], "default": {"scopes": ["base"]}}"#).unwrap();
        assert_eq!(p.rule_for(&Route::default()).unwrap().scopes, ["base"]);
    }

    #[test]
    fn scopes_all_of_and_any_of() {
        let all = Rule { scopes: vec!["a".into(), "b".into()], ..Rule::default() };
        assert!(all.check(&identity(&["a", "b", "c"])).is_ok());
        assert_eq!(
            all.check(&identity(&["a"])),
            Err(Denial::InsufficientScope { required: vec!["a".into(), "b".into()] })
        );
        let any = Rule { scope_match: ScopeMatch::Any, ..all };
        assert!(any.check(&identity(&["b"])).is_ok());
        assert!(any.check(&identity(&[])).is_err());
    }

    #[test]
    fn issuer_and_audience_requirements_make_the_token_invalid_here() {
        let r = Rule { issuers: vec!["https://other".into()], ..Rule::default() };
        assert_eq!(r.check(&identity(&[])), Err(Denial::InvalidToken));
        let r = Rule { audiences: vec!["nope".into(), "api".into()], ..Rule::default() };
        assert!(r.check(&identity(&[])).is_ok());
        let r = Rule { audiences: vec!["nope".into()], ..Rule::default() };
        assert_eq!(r.check(&identity(&[])), Err(Denial::InvalidToken));
    }

    #[test]
    fn bad_documents_are_explained() {
        assert!(Policy::from_json("{").unwrap_err().contains("not valid"));
        assert!(Policy::from_json(r#"{"routes":[{"path":"orders"}]}"#).unwrap_err().contains("must start with /"));
        assert!(Policy::from_json(r#"{"routes":[{"path":"/a/**/b"}]}"#).unwrap_err().contains("** may only end"));
        assert!(Policy::from_json(r#"{"routes":[{"path":"/a","scope":["x"]}]}"#).is_err(), "typos are not ignored");
        assert!(Policy::from_json(r#"{"default":"allow"}"#).is_err());
        for unreachable in ["/a/../b", "/%61dmin", "/a;b", "/a?x=1", "/a#b", "/admin.", "/ａｄｍｉｎ", "/a*b", "/a%3Fb"]
        {
            let doc = format!(r#"{{"routes":[{{"path":"{unreachable}"}}]}}"#);
            assert!(Policy::from_json(&doc).unwrap_err().contains("can never match"), "{unreachable}");
        }
    }

    #[test]
    fn claim_conditions_are_a_routes_and_read_once() {
        let doc = r#"{"routes": [
            {"path": "/hr/**", "scopes": ["hr"], "claims": [{"claim": "/groups", "contains_any": ["hr"]}]},
            {"path": "/ops/**", "claims": [{"any": [{"claim": "/groups", "contains_any": ["ops"]}, {"claim": "/acr", "equals": "mfa"}]}]}
        ], "default": {"claims": [{"claim": "/tid", "exists": true}]}}"#;
        let p = Policy::from_json(doc).unwrap();
        assert_eq!(p.claim_pointers(), ["/acr", "/groups", "/tid"]);
        let hr = p.rule_for(&route("GET", "/hr/x")).unwrap();
        let mut who = identity(&["hr"]);
        assert_eq!(hr.refusal(&who), Some(Refusal::Claims));
        assert_eq!(hr.check(&who), Err(Denial::InsufficientScope { required: vec![] }));
        who.facts =
            crate::claims::Facts::read(serde_json::json!({"groups": ["hr"]}).as_object().unwrap(), &p.claim_pointers());
        assert_eq!(hr.refusal(&who), None);
        assert_eq!(hr.refusal(&identity(&[])), Some(Refusal::Scopes), "scopes are checked first");
        assert!(
            p.describe().contains(
                "* /ops/** → scopes all of [], claims (/groups contains any of [\"ops\"] or /acr equals \"mfa\")"
            ),
            "{}",
            p.describe()
        );
        assert!(p.describe().contains("anything else → scopes all of [], claims /tid exists"), "{}", p.describe());
    }

    #[test]
    fn a_bad_claim_condition_names_its_route() {
        let err = Policy::from_json(
            r#"{"routes": [{"path": "/a"}, {"path": "/b", "claims": [{"claim": "g", "exists": true}]}]}"#,
        )
        .unwrap_err();
        assert!(err.starts_with("policy route 2 (* /b): claim \"g\""), "{err}");
        let err = Policy::from_json(r#"{"default": {"claims": [{"claim": "/g", "equals": []}]}}"#).unwrap_err();
        assert!(err.starts_with("policy default: claim /g: equals"), "{err}");
    }

    #[test]
    fn the_zero_config_policy_requires_the_scopes_everywhere() {
        let p = Policy::everywhere(vec!["s".into()]);
        assert_eq!(p.rule_for(&Route::default()).unwrap().scopes, ["s"]);
        assert_eq!(p.rule_for(&route("GET", "/x")).unwrap().scopes, ["s"]);
    }
}
