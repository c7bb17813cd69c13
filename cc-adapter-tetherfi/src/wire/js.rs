//! A small, tolerant parser for the JavaScript literals DWR replies carry.
//!
//! DWR answers with JavaScript text: strings in single or double quotes with backslash
//! escapes, numbers, `true`/`false`, `null`/`undefined`, arrays, and object literals whose keys
//! may be bare identifiers (`{name:"Alex", index:0}`). [`parse_value`] turns one literal into a
//! [`serde_json::Value`] (`undefined` becomes `null`); [`parse_call`] reads one
//! `object.Method(arg, …)` statement. Every error is a plain message; callers wrap it in
//! `Error::Protocol` naming the frame. No input makes these functions panic (see the
//! property tests in `tests/wire.rs`), and nesting is limited to [`MAX_DEPTH`].

use serde_json::{Map, Number, Value};

/// The deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 32;

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            s: text.as_bytes(),
            text,
            pos: 0,
        }
    }

    fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", c as char, self.pos))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH}"));
        }
        self.ws();
        match self.peek() {
            None => Err("unexpected end of input".to_owned()),
            Some(b'"' | b'\'') => self.string().map(Value::String),
            Some(b'[') => self.array(depth),
            Some(b'{') => self.object(depth),
            Some(b'-' | b'+' | b'.' | b'0'..=b'9') => self.number(),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b'$' => {
                let word = self.ident();
                match word {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    "null" | "undefined" => Ok(Value::Null),
                    other => Err(format!("unexpected identifier `{other}`")),
                }
            }
            Some(c) => Err(format!("unexpected `{}` at byte {}", c as char, self.pos)),
        }
    }

    fn ident(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' {
                self.pos += 1;
            } else {
                break;
            }
        }
        &self.text[start..self.pos]
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = self.s[self.pos];
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let Some(c) = rest.chars().next() else {
                return Err("unterminated string".to_owned());
            };
            self.pos += c.len_utf8();
            match c {
                c if c as u32 == u32::from(quote) => return Ok(out),
                '\\' => {
                    let Some(e) = self.text[self.pos..].chars().next() else {
                        return Err("unterminated escape".to_owned());
                    };
                    self.pos += e.len_utf8();
                    match e {
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'v' => out.push('\u{b}'),
                        '0' => out.push('\0'),
                        'u' => out.push(self.unicode_escape()?),
                        'x' => {
                            let code = self.hex(2)?;
                            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn hex(&mut self, n: usize) -> Result<u32, String> {
        let end = self.pos + n;
        let digits = self
            .text
            .get(self.pos..end)
            .ok_or_else(|| "truncated escape".to_owned())?;
        let v = u32::from_str_radix(digits, 16).map_err(|_| format!("bad escape `{digits}`"))?;
        self.pos = end;
        Ok(v)
    }

    fn unicode_escape(&mut self) -> Result<char, String> {
        let hi = self.hex(4)?;
        if (0xD800..0xDC00).contains(&hi) && self.text[self.pos..].starts_with("\\u") {
            self.pos += 2;
            let lo = self.hex(4)?;
            if (0xDC00..0xE000).contains(&lo) {
                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                return Ok(char::from_u32(c).unwrap_or('\u{fffd}'));
            }
            return Ok('\u{fffd}');
        }
        Ok(char::from_u32(hi).unwrap_or('\u{fffd}'))
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E') {
                self.pos += 1;
            } else {
                break;
            }
        }
        let t = &self.text[start..self.pos];
        if let Ok(i) = t.parse::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        let f: f64 = t.parse().map_err(|_| format!("bad number `{t}`"))?;
        Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("bad number `{t}`"))
    }

    fn array(&mut self, depth: usize) -> Result<Value, String> {
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.ws();
            if self.peek() == Some(b']') {
                self.pos += 1;
                return Ok(Value::Array(items));
            }
            items.push(self.value(depth + 1)?);
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {}
                _ => return Err(format!("expected `,` or `]` at byte {}", self.pos)),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, String> {
        self.pos += 1;
        let mut map = Map::new();
        loop {
            self.ws();
            let key = match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                Some(b'"' | b'\'') => self.string()?,
                Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' => {
                    self.ident().to_owned()
                }
                _ => return Err(format!("expected a key at byte {}", self.pos)),
            };
            self.expect(b':')?;
            let v = self.value(depth + 1)?;
            map.insert(key, v);
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return Err(format!("expected `,` or `}}` at byte {}", self.pos)),
            }
        }
    }
}

/// Parses one JavaScript literal; trailing text other than whitespace and `;` is an error.
pub fn parse_value(text: &str) -> Result<Value, String> {
    let mut p = Parser::new(text);
    let v = p.value(0)?;
    p.ws();
    while p.peek() == Some(b';') {
        p.pos += 1;
        p.ws();
    }
    if p.pos != p.s.len() {
        return Err(format!("trailing text at byte {}", p.pos));
    }
    Ok(v)
}

/// Parses one call statement `target.Method(arg, …);` into `("target.Method", args)`.
pub fn parse_call(text: &str) -> Result<(String, Vec<Value>), String> {
    let mut p = Parser::new(text);
    p.ws();
    let start = p.pos;
    while let Some(c) = p.peek() {
        if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'.') {
            p.pos += 1;
        } else {
            break;
        }
    }
    let name = text[start..p.pos].to_owned();
    if name.is_empty() {
        return Err("expected a function name".to_owned());
    }
    p.expect(b'(')?;
    let mut args = Vec::new();
    loop {
        p.ws();
        if p.peek() == Some(b')') {
            p.pos += 1;
            break;
        }
        args.push(p.value(0)?);
        p.ws();
        match p.peek() {
            Some(b',') => p.pos += 1,
            Some(b')') => {}
            _ => return Err(format!("expected `,` or `)` at byte {}", p.pos)),
        }
    }
    p.ws();
    while p.peek() == Some(b';') {
        p.pos += 1;
        p.ws();
    }
    if p.pos != p.s.len() {
        return Err(format!("trailing text at byte {}", p.pos));
    }
    Ok((name, args))
}

/// Writes `v` as a JavaScript literal (JSON is valid JavaScript; `/` is escaped so a string
/// can never close a `</script>` tag).
pub fn to_js(v: &Value) -> String {
    serde_json::to_string(v)
        .unwrap_or_else(|_| "null".to_owned())
        .replace('/', "\\/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literals() {
        assert_eq!(
            parse_value(r#"{name:'Alex', "id":3, list:[1,2.5,true,null,undefined]}"#).unwrap(),
            json!({"name":"Alex","id":3,"list":[1,2.5,true,null,null]})
        );
        assert_eq!(parse_value(r#""a\"b\u00e9\n""#).unwrap(), json!("a\"bé\n"));
        assert_eq!(parse_value(r"'\ud83d\ude00'").unwrap(), json!("😀"));
        assert!(parse_value("{a:").is_err());
        assert!(parse_value("[1,2").is_err());
        assert!(parse_value("foo").is_err());
    }

    #[test]
    fn calls() {
        let (name, args) =
            parse_call(r#"__textchat.OnMessageReceived("Alex","hello%20there","17");"#).unwrap();
        assert_eq!(name, "__textchat.OnMessageReceived");
        assert_eq!(
            args,
            vec![json!("Alex"), json!("hello%20there"), json!("17")]
        );
        assert!(parse_call("__textchat.OnEcho(\"x\"").is_err());
        assert_eq!(parse_call("a.B()").unwrap().1, Vec::<Value>::new());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse_value(&deep).is_err());
    }

    #[test]
    fn writer_round_trips() {
        let v = json!({"a":"</script>","b":[1,null]});
        assert_eq!(parse_value(&to_js(&v)).unwrap(), v);
    }
}
