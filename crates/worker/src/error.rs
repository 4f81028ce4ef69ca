//! The error a worker function answers with: the protocol's error object `E`.

use std::fmt;

use comrade_protocol::push_json_str;
use serde_json::Value;

/// An error sent back to the caller, who receives it as a JavaScript `Error`.
///
/// On the wire it is the protocol's error object:
/// `{"name":…,"message":…,"code":…,"stack":…, …fields}`. The pool rebuilds a JS error of the
/// built-in class named by `name` when there is one (`TypeError`, `RangeError`, …), and copies
/// `code`, `stack` and every extra field onto it.
///
/// ```
/// use comrade_worker::Error;
/// let e = Error::new("value out of range")
///     .name("RangeError")
///     .code("E_RANGE")
///     .field("limit", serde_json::json!(10));
/// assert_eq!(e.to_string(), "RangeError: value out of range [E_RANGE]");
/// ```
///
/// Any [`std::error::Error`] converts into it (`name` `"Error"`, `message` its `Display` text),
/// so `?` works on I/O, parse and serde errors inside worker functions. For that reason this
/// type does not itself implement `std::error::Error` (the same trade-off `anyhow` makes).
#[derive(Clone, PartialEq)]
pub struct Error {
    pub(crate) name: String,
    pub(crate) message: String,
    pub(crate) code: Option<String>,
    pub(crate) stack: Option<String>,
    pub(crate) fields: Vec<(String, Value)>,
}

impl Error {
    /// An error with this message, `name` `"Error"` and no code.
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            name: "Error".to_owned(),
            message: message.into(),
            code: None,
            stack: None,
            fields: Vec::new(),
        }
    }

    /// Sets `name`. A built-in JS error name (`"TypeError"`, `"RangeError"`, `"SyntaxError"`,
    /// `"ReferenceError"`, `"EvalError"`, `"URIError"`) makes the caller's error an instance
    /// of that class.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets `code` (the caller sees it as `err.code`).
    pub fn code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Sets `stack` (the caller sees it as `err.stack`).
    pub fn stack(mut self, stack: impl Into<String>) -> Self {
        self.stack = Some(stack.into());
        self
    }

    /// Adds a field, copied onto the caller's error as an own property. Setting a field again
    /// replaces it. The keys `name`, `message`, `code` and `stack` set those members instead
    /// (a non-string value is turned into its JSON text).
    pub fn field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        let key = key.into();
        let value = value.into();
        let text = || match &value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match key.as_str() {
            "name" => self.name = text(),
            "message" => self.message = text(),
            "code" => self.code = Some(text()),
            "stack" => self.stack = Some(text()),
            _ => match self.fields.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => self.fields.push((key, value)),
            },
        }
        self
    }

    /// The error as the JSON object that goes on the wire.
    pub fn to_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        map.insert("name".into(), Value::String(self.name.clone()));
        map.insert("message".into(), Value::String(self.message.clone()));
        if let Some(code) = &self.code {
            map.insert("code".into(), Value::String(code.clone()));
        }
        if let Some(stack) = &self.stack {
            map.insert("stack".into(), Value::String(stack.clone()));
        }
        for (k, v) in &self.fields {
            map.insert(k.clone(), v.clone());
        }
        Value::Object(map)
    }

    /// The wire form: one JSON object, no newline.
    pub(crate) fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.message.len() + 32);
        self.write_json(&mut out);
        out
    }

    /// Appends the wire form (one JSON object, no newline) to `out`.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"name\":");
        push_json_str(out, &self.name);
        out.extend_from_slice(b",\"message\":");
        push_json_str(out, &self.message);
        if let Some(code) = &self.code {
            out.extend_from_slice(b",\"code\":");
            push_json_str(out, code);
        }
        if let Some(stack) = &self.stack {
            out.extend_from_slice(b",\"stack\":");
            push_json_str(out, stack);
        }
        for (k, v) in &self.fields {
            out.push(b',');
            push_json_str(out, k);
            out.push(b':');
            // A Value always serializes (its map keys are strings).
            let _ = serde_json::to_writer(&mut *out, v);
        }
        out.push(b'}');
    }

    /// The `TypeError` / `ERR_INVALID_ARGS` answer for arguments that do not fit.
    /// The customary answer to a cancelled call: `AbortError`, code `ABORT_ERR`.
    pub fn aborted() -> Self {
        Error::new("the call was cancelled by the pool")
            .name("AbortError")
            .code("ABORT_ERR")
    }

    pub(crate) fn invalid_args(message: impl Into<String>) -> Self {
        Error::new(message)
            .name("TypeError")
            .code("ERR_INVALID_ARGS")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)?;
        if let Some(code) = &self.code {
            write!(f, " [{code}]")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({})", self.to_json())
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(e: E) -> Self {
        Error::new(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wire(e: &Error) -> Value {
        let mut out = Vec::new();
        e.write_json(&mut out);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn defaults_to_name_error() {
        let e = Error::new("boom");
        assert_eq!(wire(&e), json!({"name": "Error", "message": "boom"}));
        assert_eq!(e.to_string(), "Error: boom");
    }

    #[test]
    fn builder_sets_everything_and_wire_matches_to_json() {
        let e = Error::new("bad \"input\"\n")
            .name("RangeError")
            .code("E_BAD")
            .stack("RangeError: bad\n    at f")
            .field("detail", 42)
            .field("list", json!([1, "x"]))
            .field("detail", 43);
        let expected = json!({"name": "RangeError", "message": "bad \"input\"\n", "code": "E_BAD",
            "stack": "RangeError: bad\n    at f", "detail": 43, "list": [1, "x"]});
        assert_eq!(wire(&e), expected);
        assert_eq!(e.to_json(), expected);
        assert_eq!(e.to_string(), "RangeError: bad \"input\"\n [E_BAD]");
    }

    #[test]
    fn reserved_field_keys_set_the_members() {
        let e = Error::new("m")
            .field("code", "E_X")
            .field("name", "TypeError")
            .field("message", 5);
        assert_eq!(
            wire(&e),
            json!({"name": "TypeError", "message": "5", "code": "E_X"})
        );
    }

    #[test]
    fn converts_from_std_errors() {
        let e: Error = serde_json::from_str::<u8>("x").unwrap_err().into();
        assert_eq!(e.name, "Error");
        assert!(e.message.contains("expected value"));
        let e: Error = std::io::Error::other("disk on fire").into();
        assert_eq!(e.message, "disk on fire");
        let e: Error = "x".parse::<i32>().unwrap_err().into();
        assert_eq!(e.message, "invalid digit found in string");
    }
}
