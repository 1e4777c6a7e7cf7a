//! A JSON body rewritten byte for byte as Python's `json.dumps(json.loads(body), sort_keys=True)` writes it, for receivers that verify a signature over that form.
//!
//! Python writes `", "` and `": "` between items, escapes every character
//! outside printable ASCII as `\uXXXX` (surrogate pairs above U+FFFF,
//! `\n`-style escapes for the five it has them for), sorts keys by code
//! point, keeps an integer's digits as written (Python's ints are unbounded)
//! and writes a number with a fraction or exponent as `repr(float(text))`:
//! the shortest digits that read back to the same double, in fixed notation
//! from 1e-4 up to below 1e16 (with `.0` when whole), else as `1e+16`,
//! `1.5e-05`, and `Infinity` beyond the double's range. Number literals are
//! read from the text, not through a parsed `f64`/`u64`, so integers of any
//! length keep their digits.

/// Why a body cannot be rewritten (it is not JSON, or nests too deep).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the body cannot be rewritten as Python's json.dumps(sort_keys=True): {0}")]
pub struct NotRewritable(pub &'static str);

/// Deepest nesting rewritten (Python's own default recursion limit is 1000).
const MAX_DEPTH: usize = 512;

/// `body` in Python's `json.dumps(..., sort_keys=True)` form.
pub fn python_sorted(body: &[u8]) -> Result<Vec<u8>, NotRewritable> {
    let mut reader = Reader { text: body, at: 0 };
    let value = reader.value(0)?;
    reader.space();
    if reader.at != body.len() {
        return Err(NotRewritable("text after the JSON value"));
    }
    let mut out = String::with_capacity(body.len() + body.len() / 8);
    write(&value, &mut out);
    Ok(out.into_bytes())
}

enum Value {
    Literal(&'static str),
    /// A number as written in the body.
    Number(String),
    Text(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn space(&mut self) {
        while self.text.get(self.at).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, NotRewritable> {
        if depth > MAX_DEPTH {
            return Err(NotRewritable("nested deeper than 512 levels"));
        }
        self.space();
        let rest = &self.text[self.at..];
        for (word, literal) in [(&b"null"[..], "null"), (b"true", "true"), (b"false", "false")] {
            if rest.starts_with(word) {
                self.at += word.len();
                return Ok(Value::Literal(literal));
            }
        }
        match rest.first() {
            Some(b'"') => Ok(Value::Text(self.string()?)),
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                self.space();
                if self.text.get(self.at) == Some(&b']') {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.space();
                    match self.text.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Value::Array(items));
                        }
                        _ => return Err(NotRewritable("an array is not closed")),
                    }
                }
            }
            Some(b'{') => {
                self.at += 1;
                let mut members: Vec<(String, Value)> = Vec::new();
                self.space();
                if self.text.get(self.at) == Some(&b'}') {
                    self.at += 1;
                    return Ok(Value::Object(members));
                }
                loop {
                    self.space();
                    if self.text.get(self.at) != Some(&b'"') {
                        return Err(NotRewritable("an object key is not a string"));
                    }
                    let key = self.string()?;
                    self.space();
                    if self.text.get(self.at) != Some(&b':') {
                        return Err(NotRewritable("an object key has no value"));
                    }
                    self.at += 1;
                    let value = self.value(depth + 1)?;
                    // Python keeps the last of duplicate keys.
                    members.retain(|(k, _)| *k != key);
                    members.push((key, value));
                    self.space();
                    match self.text.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return Ok(Value::Object(members));
                        }
                        _ => return Err(NotRewritable("an object is not closed")),
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.at;
                while self
                    .text
                    .get(self.at)
                    .is_some_and(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                {
                    self.at += 1;
                }
                let literal = std::str::from_utf8(&self.text[start..self.at]).map_err(|_| NotRewritable("a number"))?;
                Ok(Value::Number(number(literal)?))
            }
            _ => Err(NotRewritable("not a JSON value")),
        }
    }

    /// A string token, decoded (serde_json checks its escapes and UTF-8).
    fn string(&mut self) -> Result<String, NotRewritable> {
        let start = self.at;
        self.at += 1;
        loop {
            match self.text.get(self.at) {
                None => return Err(NotRewritable("a string is not closed")),
                Some(b'\\') => self.at += 2,
                Some(b'"') => break,
                Some(_) => self.at += 1,
            }
        }
        self.at += 1;
        serde_json::from_slice(&self.text[start..self.at]).map_err(|_| NotRewritable("a string is not valid JSON"))
    }
}

/// A number literal as Python writes what `json.loads` makes of it.
fn number(literal: &str) -> Result<String, NotRewritable> {
    let bad = || NotRewritable("a number is not valid JSON");
    let digits = literal.strip_prefix('-').unwrap_or(literal);
    let valid_int =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !literal.contains(['.', 'e', 'E']) {
        if !valid_int(digits) {
            return Err(bad());
        }
        // An int: its digits as written, but no negative zero.
        return Ok(if digits.bytes().all(|b| b == b'0') { "0".into() } else { literal.into() });
    }
    let (mantissa, exponent) = match digits.find(['e', 'E']) {
        Some(i) => (&digits[..i], Some(&digits[i + 1..])),
        None => (digits, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    if !valid_int(whole)
        || fraction.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()))
        || !exponent_ok
    {
        return Err(bad());
    }
    let value: f64 = literal.parse().map_err(|_| bad())?;
    Ok(float_repr(value))
}

/// Python's `repr(float)`.
fn float_repr(value: f64) -> String {
    if value.is_infinite() {
        return if value < 0.0 { "-Infinity" } else { "Infinity" }.into();
    }
    if value.is_nan() {
        return "NaN".into();
    }
    // Shortest round-trip digits, as `d.ddde<exp>` (Rust, like Python, picks the closest shortest).
    let shortest = format!("{:e}", value.abs());
    let (mantissa, exp) = shortest.split_once('e').unwrap_or((&shortest, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if value.is_sign_negative() { "-" } else { "" };
    if value == 0.0 {
        return format!("{sign}0.0");
    }
    // Python's decpt: the value is 0.<digits> × 10^decpt.
    let decpt = exp + 1;
    let n = digits.len() as i32;
    if decpt <= -4 || decpt > 16 {
        let mut m = digits[..1].to_owned();
        if n > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        return format!("{sign}{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    if decpt <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-decpt) as usize))
    } else if decpt < n {
        format!("{sign}{}.{}", &digits[..decpt as usize], &digits[decpt as usize..])
    } else {
        format!("{sign}{digits}{}.0", "0".repeat((decpt - n) as usize))
    }
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Literal(word) => out.push_str(word),
        Value::Number(text) => out.push_str(text),
        Value::Text(text) => write_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            // Code point order: UTF-8 byte order is the same.
            let mut sorted: Vec<&(String, Value)> = members.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (i, (key, value)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(key, out);
                out.push_str(": ");
                write(value, out);
            }
            out.push('}');
        }
    }
}

/// Python's `ensure_ascii` string: printable ASCII as is, the rest escaped.
fn write_string(text: &str, out: &mut String) {
    use std::fmt::Write;
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(text: &str) -> String {
        String::from_utf8(python_sorted(text.as_bytes()).unwrap()).unwrap()
    }

    /// Expected values written by CPython 3 (`json.dumps(json.loads(x), sort_keys=True)`).
    #[test]
    fn matches_what_python_writes() {
        let cases = [
            (r#"{"b":1,"a":[true,false,null],"c":{"z":"x","y":2.5}}"#, r#"{"a": [true, false, null], "b": 1, "c": {"y": 2.5, "z": "x"}}"#),
            (r#"{"é":"café ☃ 😀","e":"\u0001\u007f\n\"\\/"}"#, r#"{"e": "\u0001\u007f\n\"\\/", "\u00e9": "caf\u00e9 \u2603 \ud83d\ude00"}"#),
            ("[1.0, 100.0, 1e16, 1.5e16, 1e15, 0.0001, 0.00001, 123.456, -0.0, -0, 1E400, 12345678901234567890123]",
             "[1.0, 100.0, 1e+16, 1.5e+16, 1000000000000000.0, 0.0001, 1e-05, 123.456, -0.0, 0, Infinity, 12345678901234567890123]"),
            ("[0.1, 0.30000000000000004, 2.5e-7, 1.7976931348623157e308, 5e-324, 3.14159]",
             "[0.1, 0.30000000000000004, 2.5e-07, 1.7976931348623157e+308, 5e-324, 3.14159]"),
            (" { } ", "{}"),
            ("[]", "[]"),
        ];
        for (input, expected) in cases {
            assert_eq!(rewrite(input), expected, "{input}");
        }
    }

    #[test]
    fn refuses_what_is_not_json() {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "1e", "nul", "\"x", "{} x", "--1"] {
            assert!(python_sorted(bad.as_bytes()).is_err(), "{bad}");
        }
        let deep = format!("{}{}", "[".repeat(600), "]".repeat(600));
        assert!(python_sorted(deep.as_bytes()).is_err());
    }
}
