//! Claim conditions of a route: tests on the validated token's claims (a JWT's, or the
//! introspection answer's), each claim addressed by a JSON Pointer (RFC 6901), so names with
//! dots or slashes (`/https:~1~1example.com~1roles`) and nested claims
//! (`/realm_access/roles`) work.
//!
//! ```json
//! "claims": [
//!   {"claim": "/realm_access/roles", "contains_any": ["admin", "ops"]},
//!   {"any": [{"claim": "/acr", "one_of": ["mfa", "phr"]}, {"claim": "/amr", "contains_all": ["hwk"]}]},
//!   {"claim": "/email_verified", "equals": true},
//!   {"claim": "/legacy", "exists": false}
//! ]
//! ```
//!
//! A route's conditions must all hold. The logic has no negation, so a test that cannot be
//! evaluated (a string where a number or an array is expected, an object, a nested array) is
//! simply false, and false can only ever make a decision stricter.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

/// A condition on a token's claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Every one holds.
    All(Vec<Condition>),
    /// At least one holds.
    Any(Vec<Condition>),
    /// The claim at the pointer passes the test.
    Claim { pointer: String, test: Test },
}

/// What a claim's value must be. Scalars are JSON strings, numbers or booleans, compared with
/// their type: the string `"true"` is not `true`, and `"5"` is not `5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    /// A scalar equal to this one.
    Equals(Value),
    /// A scalar equal to one of these.
    OneOf(Vec<Value>),
    /// An array holding at least one of these (a lone scalar counts as an array of one).
    ContainsAny(Vec<Value>),
    /// An array holding every one of these (a lone scalar counts as an array of one).
    ContainsAll(Vec<Value>),
    /// Present and not null.
    Exists,
    /// Not present at all (a null is present).
    Absent,
    /// A number that compares with this one so: `Greater` and `true` is `gte`.
    Compare { expect: Ordering, or_equal: bool, than: Number },
}

/// The operators a claim test is written with, as in the policy document.
const OPERATORS: &[&str] = &["equals", "one_of", "contains_any", "contains_all", "exists", "gt", "gte", "lt", "lte"];

impl Condition {
    /// Reads one condition of a policy document, naming what is wrong with it.
    pub fn parse(doc: &Value) -> Result<Condition, String> {
        let Some(object) = doc.as_object() else {
            return Err(format!("a claim condition is an object, not {doc}"));
        };
        for combinator in ["all", "any"] {
            if let Some(list) = object.get(combinator) {
                if object.len() != 1 {
                    return Err(format!("a claim condition with {combinator:?} has no other members"));
                }
                let items = list
                    .as_array()
                    .filter(|items| !items.is_empty())
                    .ok_or_else(|| format!("{combinator:?} takes a non-empty array of claim conditions"))?;
                let parsed = items.iter().map(Condition::parse).collect::<Result<Vec<_>, _>>()?;
                return Ok(if combinator == "all" { Condition::All(parsed) } else { Condition::Any(parsed) });
            }
        }
        let pointer = match object.get("claim") {
            Some(Value::String(p)) => pointer(p)?,
            _ => return Err(format!("a claim condition names its claim as \"claim\": \"/pointer\": {doc}")),
        };
        if let Some(unknown) = object.keys().find(|k| *k != "claim" && !OPERATORS.contains(&k.as_str())) {
            return Err(format!(
                "claim {pointer}: unknown member {unknown:?} (expected one of {})",
                OPERATORS.join(", ")
            ));
        }
        let mut operators = object.iter().filter(|(k, _)| *k != "claim");
        let (Some((operator, operand)), None) = (operators.next(), operators.next()) else {
            return Err(format!("claim {pointer}: exactly one of {} is needed", OPERATORS.join(", ")));
        };
        let test = test(operator, operand).map_err(|e| format!("claim {pointer}: {operator}: {e}"))?;
        Ok(Condition::Claim { pointer: pointer.to_string(), test })
    }

    /// Whether the condition holds for these facts (the values at the policy's pointers).
    pub fn holds(&self, facts: &Facts) -> bool {
        match self {
            Condition::All(items) => items.iter().all(|c| c.holds(facts)),
            Condition::Any(items) => items.iter().any(|c| c.holds(facts)),
            Condition::Claim { pointer, test } => test.passes(facts.0.get(pointer)),
        }
    }

    /// Every pointer the condition reads, appended to `out`.
    pub fn pointers<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Condition::All(items) | Condition::Any(items) => items.iter().for_each(|c| c.pointers(out)),
            Condition::Claim { pointer, .. } => out.push(pointer),
        }
    }

    /// The condition in words, for `check-config`.
    pub fn describe(&self) -> String {
        let list = |items: &[Condition], word: &str| {
            let parts: Vec<String> = items.iter().map(Condition::describe).collect();
            format!("({})", parts.join(word))
        };
        match self {
            Condition::All(items) => list(items, " and "),
            Condition::Any(items) => list(items, " or "),
            Condition::Claim { pointer, test } => format!("{pointer} {}", test.describe()),
        }
    }
}

/// A pointer as RFC 6901 writes one: `/`-separated, `~0` for `~` and `~1` for `/`. The empty
/// pointer (the whole claims set) names no claim and is refused.
fn pointer(text: &str) -> Result<&str, String> {
    if !text.starts_with('/') {
        return Err(format!("claim {text:?}: a JSON Pointer starts with / (e.g. \"/groups\")"));
    }
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!("claim {text:?}: ~ is written ~0 in a JSON Pointer, and / as ~1"));
        }
    }
    Ok(text)
}

fn test(operator: &str, operand: &Value) -> Result<Test, String> {
    let scalars = || match operand.as_array() {
        Some(items) if !items.is_empty() => items
            .iter()
            .map(|v| scalar(v).cloned())
            .collect::<Option<Vec<_>>>()
            .ok_or("takes strings, numbers or booleans"),
        _ => Err("takes a non-empty array of strings, numbers or booleans"),
    };
    let compare = |expect, or_equal| match operand {
        Value::Number(than) => Ok(Test::Compare { expect, or_equal, than: than.clone() }),
        _ => Err("takes a number"),
    };
    Ok(match operator {
        "equals" => Test::Equals(scalar(operand).cloned().ok_or("takes a string, a number or a boolean")?),
        "one_of" => Test::OneOf(scalars()?),
        "contains_any" => Test::ContainsAny(scalars()?),
        "contains_all" => Test::ContainsAll(scalars()?),
        "exists" => match operand {
            Value::Bool(true) => Test::Exists,
            Value::Bool(false) => Test::Absent,
            _ => return Err("takes true or false".into()),
        },
        "gt" => compare(Ordering::Greater, false)?,
        "gte" => compare(Ordering::Greater, true)?,
        "lt" => compare(Ordering::Less, false)?,
        "lte" => compare(Ordering::Less, true)?,
        _ => return Err("is not an operator".into()),
    })
}

impl Test {
    /// Whether a claim's value (`None`: not present) passes.
    fn passes(&self, value: Option<&Value>) -> bool {
        match self {
            Test::Absent => value.is_none(),
            Test::Exists => value.is_some_and(|v| !v.is_null()),
            Test::Equals(expected) => value.and_then(scalar).is_some_and(|v| same(v, expected)),
            Test::OneOf(expected) => value.and_then(scalar).is_some_and(|v| expected.iter().any(|e| same(v, e))),
            Test::ContainsAny(expected) => {
                value.is_some_and(|v| elements(v).any(|item| expected.iter().any(|e| same(item, e))))
            }
            Test::ContainsAll(expected) => {
                value.is_some_and(|v| expected.iter().all(|e| elements(v).any(|item| same(item, e))))
            }
            Test::Compare { expect, or_equal, than } => match value {
                Some(Value::Number(n)) => {
                    compare(n, than).is_some_and(|o| o == *expect || (*or_equal && o == Ordering::Equal))
                }
                _ => false,
            },
        }
    }

    fn describe(&self) -> String {
        let list = |items: &[Value]| items.iter().map(Value::to_string).collect::<Vec<_>>().join(" ");
        match self {
            Test::Equals(v) => format!("equals {v}"),
            Test::OneOf(items) => format!("is one of [{}]", list(items)),
            Test::ContainsAny(items) => format!("contains any of [{}]", list(items)),
            Test::ContainsAll(items) => format!("contains all of [{}]", list(items)),
            Test::Exists => "exists".into(),
            Test::Absent => "is absent".into(),
            Test::Compare { expect, or_equal, than } => {
                let word = if *expect == Ordering::Greater { ">" } else { "<" };
                format!("{word}{} {than}", if *or_equal { "=" } else { "" })
            }
        }
    }
}

/// A string, number or boolean; `None` for null, arrays and objects.
fn scalar(value: &Value) -> Option<&Value> {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)).then_some(value)
}

/// An array's items, or a lone scalar as the only item (ADFS and others send one group as a
/// string, several as an array). Objects and null have none; nested arrays never equal a scalar.
fn elements(value: &Value) -> impl Iterator<Item = &Value> {
    let items: &[Value] = match value {
        Value::Array(items) => items,
        other if scalar(other).is_some() => std::slice::from_ref(other),
        _ => &[],
    };
    items.iter()
}

/// Equal scalars of one type; numbers by value (`1` is `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare(x, y) == Some(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        _ => false,
    }
}

/// Two JSON numbers' order: exact for integers, else as `f64` (both are finite in JSON).
fn compare(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    // One integer does not fit i64 (a u64 above i64::MAX) and the other is negative.
    match (a.as_u64(), b.as_i64(), a.as_i64(), b.as_u64()) {
        (Some(_), Some(y), _, _) if y < 0 => return Some(Ordering::Greater),
        (_, _, Some(x), Some(_)) if x < 0 => return Some(Ordering::Less),
        _ => {}
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// What to keep of a valid token's claims: the context claims forwarded to the backend, and
/// the values the policy's conditions read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// Claim names, as `TOKENBRIDGE_CONTEXT_CLAIMS` lists them.
    pub context: Vec<String>,
    /// JSON Pointers, as the policy's conditions name them.
    pub conditions: Vec<String>,
}

impl Wanted {
    /// Only context claims (no policy conditions).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn context(names: &[String]) -> Wanted {
        Wanted { context: names.to_vec(), conditions: Vec::new() }
    }
}

/// The values a policy's conditions read, by pointer, as one token's claims hold them (absent
/// pointers are left out). Kept with the token's verdict, instead of every claim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts(BTreeMap<String, Value>);

impl Facts {
    /// The values at `pointers` in `claims`.
    pub fn read(claims: &Map<String, Value>, pointers: &[String]) -> Facts {
        Facts(pointers.iter().filter_map(|p| Some((p.clone(), resolve(claims, p)?.clone()))).collect())
    }
}

/// RFC 6901 evaluation: objects by member name, arrays by a decimal index without leading zeros.
fn resolve<'a>(claims: &'a Map<String, Value>, pointer: &str) -> Option<&'a Value> {
    let mut tokens = pointer.split('/').skip(1).map(|t| t.replace("~1", "/").replace("~0", "~"));
    let mut at = claims.get(&tokens.next()?)?;
    for token in tokens {
        at = match at {
            Value::Object(members) => members.get(&token)?,
            Value::Array(items) => {
                let canonical = token == "0" || (!token.starts_with('0') && token.bytes().all(|b| b.is_ascii_digit()));
                if !canonical || token.is_empty() {
                    return None;
                }
                items.get(token.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn condition(doc: Value) -> Condition {
        Condition::parse(&doc).unwrap()
    }

    fn holds(doc: Value, claims: Value) -> bool {
        let c = condition(doc);
        let mut pointers = Vec::new();
        c.pointers(&mut pointers);
        let pointers: Vec<String> = pointers.into_iter().map(str::to_string).collect();
        c.holds(&Facts::read(claims.as_object().unwrap(), &pointers))
    }

    #[test]
    fn pointers_reach_nested_and_namespaced_claims() {
        let claims = json!({
            "realm_access": {"roles": ["hr", "user"]},
            "https://example.com/roles": ["admin"],
            "a~b": "x",
            "list": [{"id": "first"}, {"id": "second"}]
        });
        assert!(holds(json!({"claim": "/realm_access/roles", "contains_any": ["hr"]}), claims.clone()));
        assert!(holds(json!({"claim": "/https:~1~1example.com~1roles", "contains_all": ["admin"]}), claims.clone()));
        assert!(holds(json!({"claim": "/a~0b", "equals": "x"}), claims.clone()));
        assert!(holds(json!({"claim": "/list/1/id", "equals": "second"}), claims.clone()));
        for odd_index in ["/list/01/id", "/list/-/id", "/list/+1/id", "/list//id", "/list/1.0/id"] {
            assert!(!holds(json!({"claim": odd_index, "exists": true}), claims.clone()), "{odd_index}");
        }
    }

    #[test]
    fn scalars_compare_with_their_type() {
        let claims = json!({"flag": "true", "n": "5", "b": true, "m": 5});
        assert!(!holds(json!({"claim": "/flag", "equals": true}), claims.clone()));
        assert!(!holds(json!({"claim": "/n", "equals": 5}), claims.clone()));
        assert!(!holds(json!({"claim": "/n", "gte": 1}), claims.clone()), "a numeric string is no number");
        assert!(holds(json!({"claim": "/b", "equals": true}), claims.clone()));
        assert!(holds(json!({"claim": "/m", "equals": 5.0}), claims.clone()), "numbers by value");
        assert!(holds(json!({"claim": "/m", "one_of": [4, 5]}), claims.clone()));
    }

    #[test]
    fn a_test_that_cannot_be_evaluated_is_false() {
        let claims = json!({"groups": [["admin"]], "obj": {"admin": true}, "s": "admin", "nul": null, "n": 3});
        for doc in [
            json!({"claim": "/groups", "contains_any": ["admin"]}),
            json!({"claim": "/obj", "contains_any": ["admin"]}),
            json!({"claim": "/obj", "equals": "admin"}),
            json!({"claim": "/groups", "equals": "admin"}),
            json!({"claim": "/s", "gt": 0}),
            json!({"claim": "/nul", "equals": "admin"}),
            json!({"claim": "/nul", "exists": true}),
            json!({"claim": "/nul", "exists": false}),
            json!({"claim": "/missing", "contains_any": ["admin"]}),
            json!({"claim": "/missing", "lt": 10}),
            json!({"claim": "/n", "one_of": ["3"]}),
        ] {
            assert!(!holds(doc.clone(), claims.clone()), "{doc}");
        }
    }

    #[test]
    fn a_lone_scalar_is_an_array_of_one_but_a_string_is_not_split() {
        let claims = json!({"role": "admin", "roles": "admin ops"});
        assert!(holds(json!({"claim": "/role", "contains_any": ["admin"]}), claims.clone()));
        assert!(holds(json!({"claim": "/role", "contains_all": ["admin"]}), claims.clone()));
        assert!(!holds(json!({"claim": "/roles", "contains_any": ["admin"]}), claims.clone()));
    }

    #[test]
    fn contains_all_and_contains_any() {
        let claims = json!({"groups": ["a", "b", "c"]});
        assert!(holds(json!({"claim": "/groups", "contains_all": ["a", "c"]}), claims.clone()));
        assert!(!holds(json!({"claim": "/groups", "contains_all": ["a", "d"]}), claims.clone()));
        assert!(holds(json!({"claim": "/groups", "contains_any": ["d", "b"]}), claims.clone()));
        assert!(!holds(json!({"claim": "/groups", "contains_any": ["d"]}), claims.clone()));
    }

    #[test]
    fn numbers_compare_exactly_across_their_forms() {
        let claims = json!({"big": u64::MAX, "neg": -1, "f": 2.5, "exact": 9_007_199_254_740_993_u64});
        assert!(holds(json!({"claim": "/big", "gt": -5}), claims.clone()));
        assert!(holds(json!({"claim": "/neg", "lt": u64::MAX}), claims.clone()));
        assert!(holds(json!({"claim": "/f", "gte": 2.5}), claims.clone()));
        assert!(!holds(json!({"claim": "/f", "gt": 2.5}), claims.clone()));
        assert!(holds(json!({"claim": "/f", "lte": 3}), claims.clone()));
        assert!(
            holds(json!({"claim": "/exact", "gt": 9_007_199_254_740_992_u64}), claims.clone()),
            "integers are not rounded through f64"
        );
    }

    #[test]
    fn exists_and_absent() {
        let claims = json!({"a": 0, "b": false});
        assert!(holds(json!({"claim": "/a", "exists": true}), claims.clone()));
        assert!(holds(json!({"claim": "/b", "exists": true}), claims.clone()));
        assert!(holds(json!({"claim": "/c", "exists": false}), claims.clone()));
        assert!(!holds(json!({"claim": "/a", "exists": false}), claims.clone()));
    }

    #[test]
    fn all_of_and_any_of_combine() {
        let claims = json!({"acr": "mfa", "groups": ["hr"]});
        let any = json!({"any": [{"claim": "/acr", "equals": "phr"}, {"claim": "/groups", "contains_any": ["hr"]}]});
        assert!(holds(any, claims.clone()));
        let all = json!({"all": [{"claim": "/acr", "equals": "phr"}, {"claim": "/groups", "contains_any": ["hr"]}]});
        assert!(!holds(all, claims.clone()));
    }

    #[test]
    fn a_huge_claim_array_is_read_in_one_pass() {
        let groups: Vec<String> = (0..200_000).map(|i| format!("g{i}")).collect();
        let claims = json!({"groups": groups});
        assert!(holds(json!({"claim": "/groups", "contains_any": ["g199999"]}), claims.clone()));
        assert!(!holds(json!({"claim": "/groups", "contains_all": ["g1", "nope"]}), claims));
    }

    #[test]
    fn conditions_are_checked_when_the_policy_is_read() {
        for (doc, says) in [
            (json!("groups"), "is an object"),
            (json!({"claim": "groups", "exists": true}), "starts with /"),
            (json!({"claim": "/a~2b", "exists": true}), "~0"),
            (json!({"claim": "/a~", "exists": true}), "~0"),
            (json!({"claim": "/g"}), "exactly one of"),
            (json!({"claim": "/g", "equals": "a", "exists": true}), "exactly one of"),
            (json!({"claim": "/g", "contain_any": ["a"]}), "unknown member \"contain_any\""),
            (json!({"claim": "/g", "contains_any": []}), "non-empty array"),
            (json!({"claim": "/g", "contains_any": "a"}), "non-empty array"),
            (json!({"claim": "/g", "one_of": [["a"]]}), "strings, numbers or booleans"),
            (json!({"claim": "/g", "equals": null}), "a string, a number or a boolean"),
            (json!({"claim": "/g", "equals": {"a": 1}}), "a string, a number or a boolean"),
            (json!({"claim": "/g", "gt": "5"}), "takes a number"),
            (json!({"claim": "/g", "exists": "yes"}), "true or false"),
            (json!({"any": []}), "non-empty array"),
            (json!({"all": [{"claim": "/g", "exists": true}], "claim": "/x"}), "no other members"),
            (json!({"claim": 5, "exists": true}), "\"claim\": \"/pointer\""),
        ] {
            let err = Condition::parse(&doc).unwrap_err();
            assert!(err.contains(says), "{doc}: {err}");
        }
    }

    #[test]
    fn conditions_read_as_words() {
        let c = condition(json!({"any": [
            {"claim": "/groups", "contains_any": ["a", "b"]},
            {"all": [{"claim": "/age", "gte": 18}, {"claim": "/x", "exists": false}]}
        ]}));
        assert_eq!(c.describe(), r#"(/groups contains any of ["a" "b"] or (/age >= 18 and /x is absent))"#);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn scalar_value() -> impl Strategy<Value = Value> {
            prop_oneof![
                "[a-c]{0,2}".prop_map(Value::from),
                (-3i64..3).prop_map(Value::from),
                prop_oneof![Just(2.5f64), Just(-0.0f64), Just(1.0f64)].prop_map(Value::from),
                Just(Value::from(u64::MAX)),
                any::<bool>().prop_map(Value::from),
            ]
        }

        /// Any claim value: scalars, null, and arrays and objects nested a few levels.
        fn claim_value() -> impl Strategy<Value = Value> {
            prop_oneof![scalar_value(), Just(Value::Null)].prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map("[a-c]", inner, 0..3)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn test_of() -> impl Strategy<Value = Test> {
            let list = || prop::collection::vec(scalar_value(), 1..3);
            prop_oneof![
                scalar_value().prop_map(Test::Equals),
                list().prop_map(Test::OneOf),
                list().prop_map(Test::ContainsAny),
                list().prop_map(Test::ContainsAll),
                Just(Test::Exists),
                Just(Test::Absent),
                (any::<bool>(), any::<bool>(), -3i64..3).prop_map(|(greater, or_equal, n)| Test::Compare {
                    expect: if greater { Ordering::Greater } else { Ordering::Less },
                    or_equal,
                    than: n.into(),
                }),
            ]
        }

        fn is_scalar(v: &Value) -> bool {
            scalar(v).is_some()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            /// What each test may hold on: a type it cannot evaluate never passes it.
            #[test]
            fn no_test_passes_a_claim_of_a_type_it_cannot_evaluate(value in proptest::option::of(claim_value()), test in test_of()) {
                let passes = test.passes(value.as_ref());
                match (&test, value.as_ref()) {
                    (Test::Absent, v) => prop_assert_eq!(passes, v.is_none()),
                    (Test::Exists, v) => prop_assert_eq!(passes, v.is_some_and(|v| !v.is_null())),
                    (_, None) => prop_assert!(!passes, "a missing claim passes {test:?}"),
                    (Test::Equals(_) | Test::OneOf(_), Some(v)) if !is_scalar(v) => prop_assert!(!passes),
                    (Test::Compare { .. }, Some(v)) if !v.is_number() => prop_assert!(!passes),
                    (Test::ContainsAny(_) | Test::ContainsAll(_), Some(Value::Array(items)))
                        if !items.iter().any(is_scalar) => prop_assert!(!passes, "nested arrays, objects or nulls only"),
                    (Test::ContainsAny(_) | Test::ContainsAll(_), Some(v)) if !v.is_array() && !is_scalar(v) => {
                        prop_assert!(!passes)
                    }
                    _ => {}
                }
            }

            /// Wrapping a claim in another array never makes a scalar test pass, and a contains
            /// test on an array passes exactly when it passes on the array's scalar items.
            #[test]
            fn arrays_are_never_read_as_their_items(value in claim_value(), test in test_of()) {
                let wrapped = Value::Array(vec![Value::Array(vec![value.clone()])]);
                if !matches!(test, Test::Exists | Test::Absent) {
                    prop_assert!(!test.passes(Some(&wrapped)), "{test:?} passed [[{value}]]");
                }
                if let (Test::ContainsAny(_) | Test::ContainsAll(_), Value::Array(items)) = (&test, &value) {
                    let scalars = Value::Array(items.iter().filter(|v| is_scalar(v)).cloned().collect());
                    prop_assert_eq!(test.passes(Some(&value)), test.passes(Some(&scalars)));
                }
            }

            /// `all` and `any` are conjunction and disjunction of their parts, at any depth.
            #[test]
            fn combinations_are_and_and_or(values in prop::collection::vec(proptest::option::of(claim_value()), 3), tests in prop::collection::vec(test_of(), 3)) {
                let pointers = ["/a", "/b", "/c"];
                let claims: Map<String, Value> = pointers.iter().zip(&values)
                    .filter_map(|(p, v)| Some((p[1..].to_string(), v.clone()?))).collect();
                let facts = Facts::read(&claims, &pointers.map(str::to_string));
                let parts: Vec<Condition> = pointers.iter().zip(&tests)
                    .map(|(p, t)| Condition::Claim { pointer: p.to_string(), test: t.clone() }).collect();
                let each: Vec<bool> = parts.iter().map(|c| c.holds(&facts)).collect();
                prop_assert_eq!(Condition::All(parts.clone()).holds(&facts), each.iter().all(|b| *b));
                prop_assert_eq!(Condition::Any(parts.clone()).holds(&facts), each.iter().any(|b| *b));
                let nested = Condition::Any(vec![Condition::All(parts[..2].to_vec()), parts[2].clone()]);
                prop_assert_eq!(nested.holds(&facts), (each[0] && each[1]) || each[2]);
            }
        }
    }
}
