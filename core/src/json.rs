//! JSON as IdPs and tokens send it, read strictly: an object that names a member twice is
//! refused at any depth. RFC 8259 §4 leaves duplicates to the reader, and readers differ
//! (`serde_json` and most JavaScript keep the last, some Java and Go readers the first), so
//! `{"active":false,"active":true}` could mean two things; it means nothing here. Names are
//! compared after unescaping, so `"\u0061ctive"` is `active`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON object from `bytes`, or `None` when they are not one JSON object without duplicate
/// member names.
pub(crate) fn object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(Value::Object(map))) => Some(map),
        _ => None,
    }
}

/// A value that refuses duplicate member names in every object it holds.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON without duplicate member names")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // serde_json never yields a non-finite number; `Null` is the type's own fallback.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            let Strict(value) = access.next_value()?;
            match map.entry(name) {
                serde_json::map::Entry::Vacant(slot) => slot.insert(value),
                serde_json::map::Entry::Occupied(_) => return Err(de::Error::custom("duplicate member name")),
            };
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_named_twice_is_refused_at_any_depth() {
        for text in [
            r#"{"active":false,"active":true}"#,
            r#"{"active":true,"\u0061ctive":false}"#,
            r#"{"a":{"b":1,"b":1}}"#,
            r#"{"a":[{"x":1},{"y":2,"y":3}]}"#,
        ] {
            assert_eq!(object(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn one_object_without_duplicates_is_read_as_serde_json_reads_it() {
        let text = r#"{"active":true,"exp":1.5e3,"n":-7,"big":18446744073709551615,"s":"\u00e9","a":[null,{}]}"#;
        let strict = object(text.as_bytes()).unwrap();
        let plain: Map<String, Value> = serde_json::from_str(text).unwrap();
        assert_eq!(strict, plain);
    }

    #[test]
    fn anything_but_one_object_is_refused() {
        for text in ["[]", "1", "\"x\"", "{} {}", "{", "", "{\"a\":1}x"] {
            assert_eq!(object(text.as_bytes()), None, "{text}");
        }
    }
}
