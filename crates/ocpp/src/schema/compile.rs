//! A compiled JSON schema: the subset of draft-04/06 the OCA schemas use, turned into a
//! flat list of nodes so validation is a walk with no lookups by name except property keys.
//!
//! Compilation refuses any keyword it does not implement instead of ignoring it: a
//! constraint silently dropped would let invalid payloads through. Annotations
//! (`description`, `javaType`, `comment`, `$id`, `default`, ...) are skipped, and so are
//! formats other than `date-time`, which JSON Schema leaves optional to check.

use serde_json::{Map, Value};

use super::SchemaError;
use crate::ErrorCode;

const OBJECT: u8 = 1;
const ARRAY: u8 = 2;
const STRING: u8 = 4;
const INTEGER: u8 = 8;
const NUMBER: u8 = 16;
const BOOLEAN: u8 = 32;
const NULL: u8 = 64;

#[derive(Debug, Default)]
struct Node {
    /// Allowed JSON types as a bit set; 0 allows any.
    types: u8,
    enumeration: Option<Box<[Value]>>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    multiple_of: Option<f64>,
    date_time: bool,
    properties: Box<[(Box<str>, usize)]>,
    required: Box<[Box<str>]>,
    closed: bool,
    items: Option<usize>,
    min_items: Option<usize>,
    max_items: Option<usize>,
    any_of: Box<[usize]>,
    one_of: Box<[usize]>,
}

#[derive(Debug)]
pub(crate) struct Compiled {
    nodes: Vec<Node>,
}

/// A violation on its way up: the path is collected in reverse while unwinding, so the
/// successful path never builds one.
struct Violation {
    code: ErrorCode,
    rev_path: Vec<Seg>,
    what: String,
}

enum Seg {
    Key(String),
    Index(usize),
}

impl Violation {
    fn new(code: ErrorCode, what: impl Into<String>) -> Self {
        Violation {
            code,
            rev_path: Vec::new(),
            what: what.into(),
        }
    }

    fn under(mut self, seg: Seg) -> Self {
        self.rev_path.push(seg);
        self
    }

    fn into_error(self) -> SchemaError {
        let mut path = String::new();
        for seg in self.rev_path.iter().rev() {
            path.push('/');
            match seg {
                // JSON pointer escaping (RFC 6901): "~" first, then "/".
                Seg::Key(k) => path.push_str(&k.replace('~', "~0").replace('/', "~1")),
                Seg::Index(i) => path.push_str(&i.to_string()),
            }
        }
        SchemaError {
            code: self.code,
            path,
            description: self.what,
        }
    }
}

struct Compiler<'a> {
    nodes: Vec<Node>,
    definitions: Option<&'a Map<String, Value>>,
    /// Node index of each definition once allocated, so `$ref`s (even recursive ones)
    /// point at one shared node.
    defined: Vec<(&'a str, usize)>,
}

impl Compiled {
    pub(crate) fn from_text(text: &str) -> Result<Compiled, String> {
        let schema: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let definitions = schema.get("definitions").and_then(Value::as_object);
        let mut c = Compiler {
            nodes: Vec::new(),
            definitions,
            defined: Vec::new(),
        };
        let root = c.node(&schema)?;
        debug_assert_eq!(root, 0);
        Ok(Compiled { nodes: c.nodes })
    }

    pub(crate) fn validate(&self, payload: &Value) -> Result<(), SchemaError> {
        self.check(0, payload).map_err(Violation::into_error)
    }

    fn check(&self, at: usize, v: &Value) -> Result<(), Violation> {
        let Some(node) = self.nodes.get(at) else {
            return Err(Violation::new(
                ErrorCode::InternalError,
                "schema node missing",
            ));
        };
        if node.types != 0 {
            check_type(node.types, v)?;
        }
        if let Some(allowed) = &node.enumeration {
            if !allowed.iter().any(|a| a == v) {
                return Err(Violation::new(
                    ErrorCode::PropertyConstraintViolation,
                    format!("{} is not an allowed value", short(v)),
                ));
            }
        }
        match v {
            Value::String(s) => check_string(node, s)?,
            Value::Number(n) => check_number(node, n)?,
            Value::Object(obj) => self.check_object(node, obj)?,
            Value::Array(items) => self.check_array(node, items)?,
            Value::Bool(_) | Value::Null => {}
        }
        if !node.any_of.is_empty() {
            let mut first = None;
            for &branch in node.any_of.iter() {
                match self.check(branch, v) {
                    Ok(()) => {
                        first = None;
                        break;
                    }
                    Err(e) => {
                        first.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first {
                return Err(e);
            }
        }
        if !node.one_of.is_empty() {
            let mut matched = 0;
            let mut first = None;
            for &branch in node.one_of.iter() {
                match self.check(branch, v) {
                    Ok(()) => matched += 1,
                    Err(e) => {
                        first.get_or_insert(e);
                    }
                }
            }
            match (matched, first) {
                (1, _) => {}
                (0, Some(e)) => return Err(e),
                _ => {
                    return Err(Violation::new(
                        ErrorCode::PropertyConstraintViolation,
                        "matches more than one alternative",
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_object(&self, node: &Node, obj: &Map<String, Value>) -> Result<(), Violation> {
        if node.closed {
            for key in obj.keys() {
                if !node.properties.iter().any(|(name, _)| **name == **key) {
                    return Err(
                        Violation::new(ErrorCode::FormatViolation, "unknown property")
                            .under(Seg::Key(key.clone())),
                    );
                }
            }
        }
        for name in node.required.iter() {
            if !obj.contains_key(&**name) {
                return Err(Violation::new(
                    ErrorCode::OccurrenceConstraintViolation,
                    "required property missing",
                )
                .under(Seg::Key(name.to_string())));
            }
        }
        for (name, sub) in node.properties.iter() {
            if let Some(v) = obj.get(&**name) {
                self.check(*sub, v)
                    .map_err(|e| e.under(Seg::Key(name.to_string())))?;
            }
        }
        Ok(())
    }

    fn check_array(&self, node: &Node, items: &[Value]) -> Result<(), Violation> {
        if let Some(min) = node.min_items {
            if items.len() < min {
                return Err(Violation::new(
                    ErrorCode::OccurrenceConstraintViolation,
                    format!("fewer than {min} items"),
                ));
            }
        }
        if let Some(max) = node.max_items {
            if items.len() > max {
                return Err(Violation::new(
                    ErrorCode::OccurrenceConstraintViolation,
                    format!("more than {max} items"),
                ));
            }
        }
        if let Some(sub) = node.items {
            for (i, item) in items.iter().enumerate() {
                self.check(sub, item).map_err(|e| e.under(Seg::Index(i)))?;
            }
        }
        Ok(())
    }
}

/// Integers must be JSON integers that fit in 64 bits. A float such as `1.0` is not one:
/// draft-04 says so, and the Python `ocpp` package, our reference peer, checks 2.0.1's
/// draft-06 schemas with its draft-04 validator too. Integers past `i64` are refused here
/// rather than later by a typed read that would otherwise have to guess a code.
fn check_type(types: u8, v: &Value) -> Result<(), Violation> {
    let (bit, ok) = match v {
        Value::Null => (NULL, types & NULL != 0),
        Value::Bool(_) => (BOOLEAN, types & BOOLEAN != 0),
        Value::String(_) => (STRING, types & STRING != 0),
        Value::Array(_) => (ARRAY, types & ARRAY != 0),
        Value::Object(_) => (OBJECT, types & OBJECT != 0),
        Value::Number(n) => {
            if types & NUMBER != 0 {
                (NUMBER, true)
            } else if n.is_i64() {
                (INTEGER, types & INTEGER != 0)
            } else if types & INTEGER != 0
                && (n.is_u64()
                    || n.as_f64()
                        .is_some_and(|f| f.fract() == 0.0 && f.abs() >= 9.2e18))
            {
                return Err(Violation::new(
                    ErrorCode::TypeConstraintViolation,
                    format!("integer {n} is out of range"),
                ));
            } else {
                (NUMBER, false)
            }
        }
    };
    if ok {
        return Ok(());
    }
    Err(Violation::new(
        ErrorCode::TypeConstraintViolation,
        format!("expected {}, got {}", type_names(types), type_names(bit)),
    ))
}

fn type_names(types: u8) -> String {
    let names = [
        (OBJECT, "an object"),
        (ARRAY, "an array"),
        (STRING, "a string"),
        (INTEGER, "an integer"),
        (NUMBER, "a number"),
        (BOOLEAN, "a boolean"),
        (NULL, "null"),
    ];
    let picked: Vec<&str> = names
        .iter()
        .filter(|(b, _)| types & b != 0)
        .map(|(_, n)| *n)
        .collect();
    picked.join(" or ")
}

fn check_string(node: &Node, s: &str) -> Result<(), Violation> {
    // JSON Schema counts characters, not bytes. The byte length is an upper bound of the
    // character count, so the common short string never gets counted.
    if let Some(max) = node.max_length {
        if s.len() > max && s.chars().count() > max {
            return Err(Violation::new(
                ErrorCode::PropertyConstraintViolation,
                format!("longer than {max} characters"),
            ));
        }
    }
    if let Some(min) = node.min_length {
        if s.chars().count() < min {
            return Err(Violation::new(
                ErrorCode::PropertyConstraintViolation,
                format!("shorter than {min} characters"),
            ));
        }
    }
    if node.date_time && crate::time::parse(s).is_none() {
        return Err(Violation::new(
            ErrorCode::PropertyConstraintViolation,
            format!("{} is not an RFC 3339 date-time", short_str(s)),
        ));
    }
    Ok(())
}

fn check_number(node: &Node, n: &serde_json::Number) -> Result<(), Violation> {
    if node.minimum.is_none() && node.maximum.is_none() && node.multiple_of.is_none() {
        return Ok(());
    }
    let Some(x) = n.as_f64() else {
        return Ok(());
    };
    if let Some(min) = node.minimum {
        if x < min {
            return Err(Violation::new(
                ErrorCode::PropertyConstraintViolation,
                format!("{n} is less than the minimum {min}"),
            ));
        }
    }
    if let Some(max) = node.maximum {
        if x > max {
            return Err(Violation::new(
                ErrorCode::PropertyConstraintViolation,
                format!("{n} is more than the maximum {max}"),
            ));
        }
    }
    if let Some(m) = node.multiple_of {
        // 21.4 / 0.1 is 213.99999999999997 in binary floating point; a relative tolerance
        // accepts what is a multiple in decimal, as the schema author meant.
        let q = x / m;
        if !q.is_finite() || (q - q.round()).abs() > 1e-9 * q.abs().max(1.0) {
            return Err(Violation::new(
                ErrorCode::PropertyConstraintViolation,
                format!("{n} is not a multiple of {m}"),
            ));
        }
    }
    Ok(())
}

/// A value for an error message, cut short: descriptions travel back to the charger.
fn short(v: &Value) -> String {
    match v {
        Value::String(s) => short_str(s),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
        other => other.to_string(),
    }
}

fn short_str(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
        None => format!("{s:?}"),
    }
}

impl<'a> Compiler<'a> {
    fn node(&mut self, schema: &'a Value) -> Result<usize, String> {
        let Some(obj) = schema.as_object() else {
            return Err(format!("schema is not an object: {schema}"));
        };
        // Draft-04/06: a `$ref` replaces its whole object, siblings are ignored.
        if let Some(r) = obj.get("$ref") {
            return self.reference(r);
        }
        let at = self.nodes.len();
        self.nodes.push(Node::default());
        let mut node = Node::default();
        for (key, value) in obj {
            match key.as_str() {
                "type" => node.types = parse_types(value)?,
                "enum" => {
                    let values = value.as_array().ok_or("enum is not an array")?;
                    node.enumeration = Some(values.clone().into_boxed_slice());
                }
                "maxLength" => node.max_length = Some(count(value, key)?),
                "minLength" => node.min_length = Some(count(value, key)?),
                "minItems" => node.min_items = Some(count(value, key)?),
                "maxItems" => node.max_items = Some(count(value, key)?),
                "minimum" => node.minimum = Some(value.as_f64().ok_or("minimum is not a number")?),
                "maximum" => node.maximum = Some(value.as_f64().ok_or("maximum is not a number")?),
                "multipleOf" => {
                    let m = value.as_f64().filter(|m| *m > 0.0);
                    node.multiple_of = Some(m.ok_or("multipleOf is not a positive number")?);
                }
                "format" => node.date_time = value.as_str() == Some("date-time"),
                "required" => {
                    let names = value.as_array().ok_or("required is not an array")?;
                    node.required = names
                        .iter()
                        .map(|n| {
                            n.as_str()
                                .map(Box::from)
                                .ok_or("required name is not a string")
                        })
                        .collect::<Result<_, _>>()?;
                }
                "additionalProperties" => match value {
                    Value::Bool(b) => node.closed = !b,
                    _ => return Err("additionalProperties as a schema is not supported".into()),
                },
                "properties" => {
                    let props = value.as_object().ok_or("properties is not an object")?;
                    let mut compiled = Vec::with_capacity(props.len());
                    for (name, sub) in props {
                        compiled.push((Box::from(name.as_str()), self.node(sub)?));
                    }
                    node.properties = compiled.into_boxed_slice();
                }
                "items" => {
                    if !value.is_object() {
                        return Err("items as a list of schemas is not supported".into());
                    }
                    node.items = Some(self.node(value)?);
                }
                "anyOf" | "oneOf" => {
                    let branches = value.as_array().ok_or("anyOf/oneOf is not an array")?;
                    let mut ids = Vec::with_capacity(branches.len());
                    for b in branches {
                        ids.push(self.node(b)?);
                    }
                    if key == "anyOf" {
                        node.any_of = ids.into_boxed_slice();
                    } else {
                        node.one_of = ids.into_boxed_slice();
                    }
                }
                // Only meaningful when `items` is a list, which is refused above.
                "additionalItems" => {}
                // Compiled on demand through `$ref`.
                "definitions" => {}
                "$schema" | "$id" | "id" | "title" | "description" | "comment" | "$comment"
                | "javaType" | "default" | "examples" => {}
                other => return Err(format!("keyword {other:?} is not supported")),
            }
        }
        self.nodes[at] = node;
        Ok(at)
    }

    fn reference(&mut self, r: &'a Value) -> Result<usize, String> {
        let target = r.as_str().ok_or("$ref is not a string")?;
        let name = target
            .strip_prefix("#/definitions/")
            .ok_or_else(|| format!("$ref {target:?} is not a local definition"))?;
        if let Some(&(_, at)) = self.defined.iter().find(|(n, _)| *n == name) {
            return Ok(at);
        }
        let schema = self
            .definitions
            .and_then(|d| d.get(name))
            .ok_or_else(|| format!("$ref to missing definition {name:?}"))?;
        // Register the index before compiling so a recursive definition refers to itself.
        let at = self.nodes.len();
        self.defined.push((name, at));
        let compiled = self.node(schema)?;
        if compiled != at {
            // The definition was itself a `$ref`: point at what it aliases.
            if let Some(entry) = self.defined.iter_mut().find(|(n, _)| *n == name) {
                entry.1 = compiled;
            }
        }
        Ok(compiled)
    }
}

fn parse_types(value: &Value) -> Result<u8, String> {
    let one = |s: &str| -> Result<u8, String> {
        Ok(match s {
            "object" => OBJECT,
            "array" => ARRAY,
            "string" => STRING,
            "integer" => INTEGER,
            "number" => NUMBER,
            "boolean" => BOOLEAN,
            "null" => NULL,
            other => return Err(format!("unknown type {other:?}")),
        })
    };
    match value {
        Value::String(s) => one(s),
        Value::Array(list) => list.iter().try_fold(0, |acc, t| {
            Ok(acc | one(t.as_str().ok_or("type list holds a non-string")?)?)
        }),
        _ => Err("type is neither a string nor a list".into()),
    }
}

fn count(value: &Value, key: &str) -> Result<usize, String> {
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("{key} is not a non-negative integer"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Compiled;
    use crate::ErrorCode;

    #[test]
    fn unknown_keywords_are_refused_not_ignored() {
        for schema in [
            r#"{"type": "object", "patternProperties": {}}"#,
            r#"{"type": "string", "pattern": "^a$"}"#,
            r#"{"type": "object", "additionalProperties": {"type": "string"}}"#,
            r#"{"type": "array", "items": [{"type": "string"}]}"#,
            r##"{"$ref": "#/definitions/Missing"}"##,
            r#"{"$ref": "other.json#/x"}"#,
            r#"{"type": "text"}"#,
            "[]",
        ] {
            assert!(Compiled::from_text(schema).is_err(), "{schema}");
        }
    }

    #[test]
    fn recursive_references_compile_once() {
        let schema = r##"{
            "definitions": {"Node": {"type": "object", "additionalProperties": false,
                "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/definitions/Node"}}}}},
            "$ref": "#/definitions/Node"
        }"##;
        let compiled = Compiled::from_text(schema).expect("compiles");
        let ok = json!({"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}]});
        assert!(compiled.validate(&ok).is_ok());
        let bad = json!({"children": [{"children": [{"name": 3}]}]});
        let err = compiled.validate(&bad).expect_err("wrong type deep down");
        assert_eq!(err.code, ErrorCode::TypeConstraintViolation);
        assert_eq!(err.path, "/children/0/children/0/name");
    }

    #[test]
    fn any_of_and_one_of() {
        let schema = r#"{"anyOf": [{"type": "string", "maxLength": 2}, {"type": "integer"}],
                         "oneOf": [{"type": "string"}, {"type": "integer", "minimum": 0}, {"type": "integer", "maximum": 10}]}"#;
        let compiled = Compiled::from_text(schema).expect("compiles");
        assert!(compiled.validate(&json!("ab")).is_ok());
        assert!(compiled.validate(&json!(-1)).is_ok());
        assert!(compiled.validate(&json!("abc")).is_err());
        let err = compiled
            .validate(&json!(5))
            .expect_err("matches two oneOf branches");
        assert_eq!(err.code, ErrorCode::PropertyConstraintViolation);
    }

    #[test]
    fn multiple_of_tolerates_binary_fractions() {
        let compiled =
            Compiled::from_text(r#"{"type": "number", "multipleOf": 0.1}"#).expect("compiles");
        for ok in [json!(21.4), json!(0.3), json!(7), json!(-1.1), json!(1e6)] {
            assert!(compiled.validate(&ok).is_ok(), "{ok}");
        }
        for bad in [json!(4.11), json!(0.05), json!(1e-9)] {
            assert!(compiled.validate(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lengths_count_characters() {
        let compiled = Compiled::from_text(r#"{"type": "string", "maxLength": 3, "minLength": 2}"#)
            .expect("compiles");
        assert!(compiled.validate(&json!("äöü")).is_ok());
        assert!(compiled.validate(&json!("äöüß")).is_err());
        assert!(compiled.validate(&json!("ä")).is_err());
    }
}
