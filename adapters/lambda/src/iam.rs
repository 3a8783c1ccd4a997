//! A route table judged for one token ([`RouteVerdict`]s, the core's) written as an IAM policy
//! for a REST API's authorizer cache: Allow statements for the routes the token may call,
//! Deny statements for those it may not, so that the one answer API Gateway caches per token
//! is right for every route (docs/lambda.md, "Route policies and the authorizer cache").
//!
//! IAM compares a request's method ARN with each `Resource` case-sensitively, `*` matching any
//! run of characters (`/` included) and `?` any one; an explicit Deny wins, and no Allow is a
//! deny. The core reads paths otherwise (first matching route, case folded, empty segments
//! dropped, ambiguous spellings refused), so where the two could differ the policy denies:
//! - Allows are exact: literal verbs, the core's own (lower-case) spelling of literal
//!   segments, `*` only for a pattern's `*` and `**`;
//! - a denied route's Deny is its own spelling (`*` for a segment not plain ASCII, which has
//!   spellings of other lengths), and, with a wildcard in an Allow, one Resource for each
//!   letter of its names in upper case (`*/A????` for `admin`): every other case, and no
//!   lower-case name;
//! - with a wildcard in an Allow: Denies of empty segments, a trailing `/`, `%`, `\`, `;`, `#`,
//!   a segment ending in `.` or starting or ending with a space; with a default that is not
//!   allowed, the spellings where an Allow's `*` spans more than one segment, or none.
//!
//! What IAM cannot tell apart is a raw character it reads as a wildcard (`*`, `?`), a control
//! or a non-ASCII character inside a segment a `*` of an Allow matches (IAM has no character
//! classes): the core refuses some of those, the policy allows them as the route's one segment.
//! See docs/lambda.md.

use tokenbridge_core::{Policy, RouteVerdict};

/// The methods API Gateway REST APIs route (`ANY` stands for these).
const VERBS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

/// API Gateway's limit on a `Resource` of an authorizer's policy, in characters ("Output from
/// an API Gateway Lambda authorizer"): no Resource is longer.
pub const MAX_RESOURCE_CHARS: usize = 512;

/// What the cached answer's context was made for: the backend whose token it holds, and
/// whether the token was introspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    pub backend: Option<usize>,
    pub introspected: bool,
}

/// The statements of a route policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePolicy {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

impl RoutePolicy {
    /// Whether IAM lets this method ARN through: no Deny matches it and some Allow does.
    pub fn allows(&self, arn: &str) -> bool {
        !self.deny.iter().any(|d| glob_matches(d, arn)) && self.allow.iter().any(|a| glob_matches(a, arn))
    }
}

/// The route policy for the token whose verdicts `table` holds, on the API and stage of
/// `method_arn`; `None` when the ARN names no API and stage, no route can be allowed, or a
/// Resource would pass [`MAX_RESOURCE_CHARS`].
pub fn route_policy(method_arn: &str, table: &[RouteVerdict], served: Served) -> Option<RoutePolicy> {
    let parts = Parts::of(method_arn, table, served)?;
    let allow = unique(parts.allow.iter().map(|(a, _)| format!("{}/{a}", parts.base)));
    // Denies name the API and stage, not the region and account: only ever shorter, and
    // only ever denying more.
    let denies = parts.deny.iter().map(|(d, _, _)| d).chain(parts.spans.iter().map(|(d, _)| d)).chain(&parts.others);
    let deny = unique(denies.map(|d| format!("{}/{d}", parts.short)));
    let too_long = allow.iter().chain(&deny).any(|r| r.chars().count() > MAX_RESOURCE_CHARS);
    (!allow.is_empty() && !too_long).then_some(RoutePolicy { allow, deny })
}

/// Whether [`route_policy`]'s policy allows exactly what the engine would, for a method ARN
/// spelled as the core reads it (lower case, no percent-encoding, no empty segment or trailing
/// `/`, a method the policy lists): no route the token satisfies is denied in IAM's reading.
/// For `check-config` and tests; it compares every Deny with every Allow.
pub fn is_exact(method_arn: &str, table: &[RouteVerdict], served: Served) -> bool {
    let Some(parts) = Parts::of(method_arn, table, served) else { return false };
    // A Deny wider than its route, over any Allow; a route's own, over an earlier route's
    // Allow (a later one's route comes second in the core too); a span, over another route's.
    // The others only ever meet other spellings.
    let meets = |d: &str, pick: &dyn Fn(usize) -> bool| parts.allow.iter().any(|(a, i)| pick(*i) && globs_meet(d, a));
    parts.all_expressible
        && !parts.deny.iter().any(|(d, j, wider)| meets(d, &|i| *wider || i < *j))
        && !parts.spans.iter().any(|(d, j)| meets(d, &|i| i != *j))
}

/// A route policy's Resources after `{api}/{stage}/`, with where they come from.
struct Parts {
    base: String,
    short: String,
    /// Allows, with their route's index.
    allow: Vec<(String, usize)>,
    /// Denies of routes, with their index and whether they are wider than the core's spelling.
    deny: Vec<(String, usize, bool)>,
    /// Denies of an Allow's `*` spanning segments, or none, with the Allow's route index.
    spans: Vec<(String, usize)>,
    /// Denies of other spellings: other cases of denied names, refused characters.
    others: Vec<String>,
    /// Every route the token satisfies is allowed.
    all_expressible: bool,
}

impl Parts {
    fn of(method_arn: &str, table: &[RouteVerdict], served: Served) -> Option<Parts> {
        let (base, short) = stage_base(method_arn)?;
        let verbs = verbs(table);
        let methods_of = |v: &RouteVerdict| match &v.route {
            Some((method, _)) => route_verbs(method, &verbs),
            None => verbs.clone(),
        };
        let expressible = |v: &RouteVerdict| {
            v.allowed
                && v.backend == served.backend
                && (served.introspected || !v.introspect)
                && !methods_of(v).is_empty()
        };
        let mut parts = Parts {
            base,
            short,
            allow: Vec::new(),
            deny: Vec::new(),
            spans: Vec::new(),
            others: Vec::new(),
            all_expressible: true,
        };
        // Other cases of denied names, under any method (each holds an upper-case letter).
        let mut cases: Vec<String> = Vec::new();
        for (index, v) in table.iter().enumerate() {
            let allowed = expressible(v);
            parts.all_expressible &= allowed == v.allowed;
            if v.route.is_none() && !allowed {
                // A default not allowed is what no Allow reaches.
                continue;
            }
            let segments: &[String] = v.route.as_ref().map_or(&[][..], |(_, s)| s.as_slice());
            let (paths, canonical) = match v.route {
                None => (vec!["*".to_string()], vec!["*".to_string()]),
                Some(_) => (paths(segments, !allowed), paths(segments, false)),
            };
            if !allowed {
                cases.extend(upper_cases(segments).into_iter().map(|c| format!("*/{c}")));
            }
            for method in methods_of(v) {
                for (path, canonical) in paths.iter().zip(&canonical) {
                    let resource = format!("{method}/{path}");
                    if allowed {
                        parts.spans.extend(spanning(segments, &method).into_iter().map(|s| (s, index)));
                        parts.allow.push((resource, index));
                    } else {
                        // A `*` of a route's Deny also meets what spans segments, or none.
                        let wider = path != canonical || segments.iter().any(|s| s == "*");
                        parts.deny.push((resource, index, wider));
                    }
                }
            }
        }
        // The default is last: when it is allowed, what an Allow's `*` reaches beyond its
        // route's segments is the default's or a denied route's.
        if table.last().is_some_and(expressible) {
            parts.spans.clear();
        }
        // Without a wildcard, the Allows' literal spellings are all the policy allows.
        if parts.allow.iter().any(|(a, _)| a.contains('*')) {
            parts.others = cases.into_iter().chain(spellings(&verbs)).collect();
        }
        Some(parts)
    }
}

/// In first-seen order, without repeats.
fn unique(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// For `check-config`: what a token's cached answer covers under `policy`, how large its
/// policy grows (the worst of every route allowed, every route denied, and each route denied
/// alone), which routes, when denied, deny requests the engine would allow, and which can be
/// reached from the cache by look-alikes of their names.
pub fn describe(policy: &Policy) -> Vec<String> {
    const SAMPLE: &str = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/";
    let served = Served { backend: None, introspected: true };
    let all = policy.route_table(|_| true);
    let routes = all.len().saturating_sub(1);
    let one_denied = |i: usize| {
        let mut table = all.clone();
        table[i].allowed = false;
        table
    };
    let mut tables = vec![all.clone(), policy.route_table(|_| false)];
    tables.extend((0..routes).map(one_denied));
    let bytes = |p: &RoutePolicy| p.allow.iter().chain(&p.deny).map(|r| r.len() + 3).sum::<usize>();
    let largest = tables.iter().map(|t| route_policy(SAMPLE, t, served).map(|p| bytes(&p))).max().flatten();
    let mut notes = vec![
        "REST answers hold an IAM policy for every route of the token (Allow for the routes it may call, \
         Deny for the others), which API Gateway caches per token; every route of it shares one context"
            .to_string(),
    ];
    notes.push(match largest {
        Some(bytes) => format!(
            "its Resources take up to about {bytes} bytes for an API and stage ARN of {} bytes; answers over {} \
             bytes fall back to the method ARN alone",
            SAMPLE.len() - 4,
            crate::authorizer::MAX_ANSWER_BYTES
        ),
        None => {
            format!("a Resource would pass {MAX_RESOURCE_CHARS} characters: answers fall back to the method ARN alone")
        }
    });
    let name = |i: usize| match &all[i].route {
        Some((method, segments)) => format!("route {} ({method} /{})", i + 1, segments.join("/")),
        None => "the default".to_string(),
    };
    let mut wider = Vec::new();
    for i in 0..routes {
        let denied = one_denied(i);
        if route_policy(SAMPLE, &denied, served).is_some() && !is_exact(SAMPLE, &denied, served) {
            wider.push(name(i));
        }
    }
    let reachable = reachable_by_look_alikes_of(policy);
    if !wider.is_empty() {
        notes.push(format!(
            "over-denied: denied, {} also deny some requests of other routes in IAM's reading (an earlier \
             route they overlap, or a `*` that spans segments)",
            wider.join(", ")
        ));
    }
    if !reachable.is_empty() {
        notes.push(format!(
            "not expressible in IAM: denied, {} can be reached from the cache by a look-alike of their names \
             with a raw non-ASCII character (which the engine refuses) through a `*` of another route or the \
             default",
            reachable.join(", ")
        ));
    }
    notes.push(
        "over-denied always: routes of another backend than the one called, `introspect` routes when the one \
         called was not introspected, methods other than API Gateway's and the policy's, and paths spelled \
         otherwise than the core reads them (upper case, percent-encodings, empty segments, a trailing /)"
            .into(),
    );
    notes.push(
        "not expressible in IAM: a raw `*`, `?`, control or non-ASCII character within a segment that a route's \
         `*` (or an allowed default) matches is allowed as that segment, where the engine refuses some; if API \
         Gateway's method ARNs can carry them and a backend folds such names (NFKC, best-fit), use \
         TOKENBRIDGE_LAMBDA_POLICY_RESOURCE=method"
            .into(),
    );
    notes
}

/// The routes that, denied, a cached answer could let through to a look-alike of their names
/// (a raw non-ASCII spelling the engine refuses) by an Allow's `*` of another route or of the
/// default: where the route-wide answer is not safe without knowing that no backend folds names.
pub fn reachable_by_look_alikes_of(policy: &Policy) -> Vec<String> {
    const SAMPLE: &str = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/";
    let served = Served { backend: None, introspected: true };
    let all = policy.route_table(|_| true);
    let mut reachable = Vec::new();
    for i in 0..all.len().saturating_sub(1) {
        let mut denied = all.clone();
        denied[i].allowed = false;
        let Some(rendered) = route_policy(SAMPLE, &denied, served) else { continue };
        if reachable_by_look_alikes(SAMPLE, &denied, i, &rendered)
            && let Some((method, segments)) = &all[i].route
        {
            reachable.push(format!("route {} ({method} /{})", i + 1, segments.join("/")));
        }
    }
    reachable
}

/// Whether an Allow of `rendered` meets a path of route `i`'s shape (its names any string of
/// their length), under one of its methods: where a look-alike of its names would be allowed.
fn reachable_by_look_alikes(arn: &str, table: &[RouteVerdict], i: usize, rendered: &RoutePolicy) -> bool {
    let (Some((base, _)), Some((method, segments))) = (stage_base(arn), &table[i].route) else { return false };
    let verbs = verbs(table);
    let mut shapes = Vec::new();
    for verb in route_verbs(method, &verbs) {
        shapes.extend(any_case_paths(segments).into_iter().map(|p| format!("{base}/{verb}/{p}")));
    }
    // Only names with a letter have look-alikes that fold to them.
    let lettered = segments.iter().any(|s| !is_wild(s) && s.chars().any(|c| c.is_alphabetic()));
    lettered && shapes.iter().any(|shape| rendered.allow.iter().any(|a| globs_meet_with(shape, a, true)))
}

/// `arn:{partition}:execute-api:{region}:{account}:{api}/{stage}` of a method ARN, and the
/// same with `*` for the region and account; `None` unless it is one, its API and stage
/// holding no IAM wildcard.
fn stage_base(arn: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, rest] = parts.as_slice() else { return None };
    let mut path = rest.splitn(3, '/');
    let (api, stage) = (path.next()?, path.next()?);
    let plain = |s: &str| !s.is_empty() && !s.contains(['*', '?', '/', ':']);
    let valid = *prefix == "arn"
        && *service == "execute-api"
        && [partition, region, account, &api, &stage].iter().all(|s| plain(s));
    valid.then(|| {
        (
            format!("arn:{partition}:execute-api:{region}:{account}:{api}/{stage}"),
            format!("arn:{partition}:execute-api:*:{api}/{stage}"),
        )
    })
}

/// Every method the policy can allow: API Gateway's and those routes name.
fn verbs(table: &[RouteVerdict]) -> Vec<String> {
    let mut verbs: Vec<String> = VERBS.iter().map(|v| v.to_string()).collect();
    for v in table {
        if let Some((method, _)) = &v.route
            && is_verb(method)
            && !verbs.contains(method)
        {
            verbs.push(method.clone());
        }
    }
    verbs
}

/// A method IAM can name literally.
fn is_verb(method: &str) -> bool {
    !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase())
}

/// The methods a route covers, among `verbs`: all for `*`/`ANY`, `GET` with `HEAD` (as the
/// core's routing has it).
fn route_verbs(method: &str, verbs: &[String]) -> Vec<String> {
    match method {
        "*" | "ANY" => verbs.to_vec(),
        "GET" => vec!["GET".into(), "HEAD".into()],
        m if is_verb(m) => vec![m.to_string()],
        // A method IAM cannot name is not among the verbs, so no Allow reaches it.
        _ => Vec::new(),
    }
}

/// A segment with one spelling per case: ASCII letters, digits and `-._~`, which the core
/// refuses percent-encoded.
fn is_plain(segment: &str) -> bool {
    segment.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// The path parts of a route's Resources: its literal segments in the core's spelling (lower
/// case); in a Deny, `*` for a segment not plain ASCII, which has spellings of other lengths.
fn paths(segments: &[String], deny: bool) -> Vec<String> {
    let written: Vec<String> = segments
        .iter()
        .filter(|s| *s != "**")
        .map(|s| match s.as_str() {
            "*" => "*".to_string(),
            s if deny && !is_plain(s) => "*".to_string(),
            s => s.to_string(),
        })
        .collect();
    with_tail(segments, written)
}

/// The path parts of a route with `?` for each letter of its plain names: what a name of that
/// length, in any case or look-alike, can be.
fn any_case_paths(segments: &[String]) -> Vec<String> {
    let written: Vec<String> = segments.iter().filter(|s| *s != "**").map(|s| any_case(s)).collect();
    with_tail(segments, written)
}

fn any_case(segment: &str) -> String {
    if is_wild(segment) || !is_plain(segment) {
        return "*".into();
    }
    segment.chars().map(|c| if c.is_ascii_alphabetic() { '?' } else { c }).collect()
}

/// The path parts for `written` (a route's segments but a final `**`): `/p/**` is `p` itself
/// and anything under it; `/**` is everything.
fn with_tail(segments: &[String], written: Vec<String>) -> Vec<String> {
    let joined = written.join("/");
    if segments.last().is_some_and(|s| s == "**") {
        if written.is_empty() { vec!["*".into()] } else { vec![joined.clone(), format!("{joined}/*")] }
    } else {
        vec![joined]
    }
}

/// For a Deny: path parts that each hold one upper-case letter where the route has its
/// lower-case one, and `?` for the other letters. Together they cover every other case of the
/// route's names, and no path spelled as the core reads it (in lower case).
fn upper_cases(segments: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let literal: Vec<&str> = segments.iter().filter(|s| *s != "**").map(String::as_str).collect();
    for (k, segment) in literal.iter().enumerate().filter(|(_, s)| !is_wild(s) && is_plain(s)) {
        for (c, letter) in segment.char_indices().filter(|(_, l)| l.is_ascii_alphabetic()) {
            let written: Vec<String> = literal
                .iter()
                .enumerate()
                .map(|(j, s)| match *s {
                    s if j == k => {
                        let mut one = any_case(s);
                        one.replace_range(c..c + 1, &letter.to_ascii_uppercase().to_string());
                        one
                    }
                    s => any_case(s),
                })
                .collect();
            out.extend(with_tail(segments, written));
        }
    }
    out
}

fn is_wild(segment: &str) -> bool {
    segment == "*" || segment == "**"
}

/// For an Allow of `segments` after `prefix` (its `{VERB}`): the Resources that match
/// where one of its `*`s spans more than one segment, or none.
fn spanning(segments: &[String], prefix: &str) -> Vec<String> {
    let written: Vec<&str> = segments.iter().filter(|s| *s != "**").map(String::as_str).collect();
    let mut out = Vec::new();
    // With a final `**`, the Allows are `p` and `p/*`.
    let double_star = segments.last().is_some_and(|s| s == "**");
    let forms: &[bool] = if double_star { &[false, true] } else { &[false] };
    for &tail in forms {
        let end = if tail { "/*" } else { "" };
        // A `*` that only `*`s and a final `**` follow may span segments: the `**` takes them
        // (in the Allow of `p` as in that of `p/*`).
        let free = |i: usize| double_star && written[i..].iter().all(|s| *s == "*");
        let with = |i: usize, part: &str| {
            let mut parts = written.clone();
            parts[i] = part;
            format!("{prefix}/{}{end}", parts.join("/"))
        };
        for i in (0..written.len()).filter(|&i| written[i] == "*") {
            // An empty match: `GET/` (the root) for `GET/*`; inside a path the Denies of empty
            // segments and a trailing `/` hold it too.
            out.push(with(i, ""));
            if !free(i) {
                out.push(with(i, "*/*"));
            }
        }
    }
    out
}

/// Spellings the core reads otherwise than IAM, denied whenever an Allow has a wildcard: empty
/// segments, a trailing `/`, percent-encodings, `\`, `;`, `#`, a segment ending in `.` (dot
/// segments too) or starting or ending with a space.
fn spellings(verbs: &[String]) -> Vec<String> {
    let mut out: Vec<String> = ["*//*", "*%*", "*\\*", "*;*", "*#*", "*./*", "*.", "*/ *", "* /*", "* "]
        .iter()
        .map(|p| p.to_string())
        .collect();
    // A `/` ending a path after the verb (`GET/` alone is the root).
    out.extend(unique(verbs.iter().map(|v| format!("{}/?*/", "?".repeat(v.len())))));
    out
}

/// IAM's matching of a Resource with a request's ARN: case-sensitive, `*` any run of
/// characters (`/` included), `?` any one character.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // reach[j]: the pattern read so far can match t[..j].
    let mut reach = vec![false; t.len() + 1];
    reach[0] = true;
    for &c in &p {
        let mut next = vec![false; t.len() + 1];
        for j in 0..=t.len() {
            if c == '*' {
                next[j] = reach[j] || (j > 0 && next[j - 1]);
            } else if j > 0 && reach[j - 1] {
                next[j] = c == '?' || c == t[j - 1];
            }
        }
        reach = next;
    }
    reach[t.len()]
}

/// Whether some text matches both patterns.
fn globs_meet(a: &str, b: &str) -> bool {
    globs_meet_with(a, b, false)
}

/// [`globs_meet`], where with `letters` a `?` of `a` stands for a letter's look-alike: any one
/// character but `/`, which no look-alike of a letter is.
fn globs_meet_with(a: &str, b: &str, letters: bool) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut seen = vec![vec![false; b.len() + 1]; a.len() + 1];
    let mut todo = vec![(0, 0)];
    while let Some((i, j)) = todo.pop() {
        if std::mem::replace(&mut seen[i][j], true) {
            continue;
        }
        if i == a.len() && j == b.len() {
            return true;
        }
        let (x, y) = (a.get(i), b.get(j));
        if x == Some(&'*') {
            todo.push((i + 1, j));
        }
        if y == Some(&'*') {
            todo.push((i, j + 1));
        }
        match (x, y) {
            (Some('*'), Some(c)) if *c != '*' => todo.push((i, j + 1)),
            (Some(c), Some('*')) if *c != '*' => todo.push((i + 1, j)),
            (Some(c), Some(d))
                if *c != '*' && *d != '*' && ((*c == '?' && !(letters && *d == '/')) || *d == '?' || c == d) =>
            {
                todo.push((i + 1, j + 1))
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests;
