//! Queue messages exactly as the Azure Functions host writes them, and reading them back.
//!
//! How the host's queue output binding turns an output value into messages (Functions host
//! `Binding/FunctionBinding.cs` `ReadAsEnumerable` and `BindAsyncCollectorAsync<byte[]>`,
//! `Workers/Http/HttpScriptInvocationResultExtensions.cs` `GetBindingValue`; the queue extension's
//! `QueuesOptions.MessageEncoding`, base64 by default):
//! - a JSON array gives one message per element;
//! - a string is first tried as base64 and, if it decodes, its bytes are the message; else a
//!   string that looks like JSON (`{…}` or `[…]` once trimmed) is parsed (an array again gives one
//!   message per element); else the string itself is the message;
//! - an object (or array element that is one) is written as Json.NET's indented text: two
//!   spaces, `"key": value`, `\n` line breaks (the Linux host's `Environment.NewLine`);
//! - the message bytes are then base64-encoded (`messageEncoding: base64`, the default) or sent
//!   as UTF-8 text (`none`).
//!
//! Json.NET details imitated: strings are escaped as Json.NET does (`\u0085`, `\u2028` and
//! `\u2029` too, lower-case hex); numbers print as .NET's shortest round-trip form (`1.0`,
//! `1E+20`); a string that is an ISO 8601 date-time ending in `Z` or without offset is read as a
//! date and printed back without trailing zeros in its fraction (`…:00.120Z` becomes `…:00.12Z`).
//! Not imitated: dates with a numeric offset (Json.NET converts them to the host's local time),
//! integers beyond 64 bits. Producers should emit UTC `Z` timestamps (docs/design.md §4).
//!
//! The service limits a message text to 64 KiB ([`MAX_MESSAGE_TEXT_BYTES`]); with base64 that is
//! 48 KiB of indented JSON. [`encoded_messages`] checks the size before anything is sent, so a
//! producer can summarise and try again.
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::Value;

/// The longest message text the queue service accepts, in bytes (64 KiB).
pub const MAX_MESSAGE_TEXT_BYTES: usize = 64 * 1024;

/// How message bytes become message text (host.json `extensions.queues.messageEncoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageEncoding {
    /// Base64 of the bytes: the default of the Functions queue extension (v5).
    #[default]
    Base64,
    /// The bytes as UTF-8 text.
    None,
}

impl MessageEncoding {
    /// Parses host.json's value (`base64` or `none`, any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "base64" => Some(MessageEncoding::Base64),
            "none" => Some(MessageEncoding::None),
            _ => None,
        }
    }

    /// The message text for `bytes`; `None` when they are not UTF-8 and the encoding is `none`.
    pub fn encode(self, bytes: &[u8]) -> Option<String> {
        match self {
            MessageEncoding::Base64 => Some(STANDARD.encode(bytes)),
            MessageEncoding::None => String::from_utf8(bytes.to_vec()).ok(),
        }
    }

    /// The bytes of a message text, strictly by this encoding (as the host's queue trigger
    /// reads it); `None` when the text is not valid in it.
    pub fn decode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            MessageEncoding::Base64 => dotnet_base64(text),
            MessageEncoding::None => Some(text.as_bytes().to_vec()),
        }
    }
}

/// Why an output value cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    /// A string that looks like JSON but is not: the host fails the invocation on it.
    #[error("the output is a string that looks like JSON but does not parse: {0}")]
    InvalidJson(String),
    /// Bytes that are not UTF-8 cannot be sent with `messageEncoding: none`.
    #[error("the message is not UTF-8 text, which messageEncoding none requires")]
    NotText,
    /// One message is over the limit.
    #[error(
        "message {index} is {size} bytes once encoded, over the queue service's limit of {limit}"
    )]
    TooLarge {
        /// Position of the message among those of the value.
        index: usize,
        /// Its encoded size in bytes.
        size: usize,
        /// [`MAX_MESSAGE_TEXT_BYTES`].
        limit: usize,
    },
}

/// The message bodies (bytes, before encoding) the host's queue output binding writes for an
/// output value. `null` writes nothing.
pub fn output_binding_messages(value: &Value) -> Result<Vec<Vec<u8>>, OutputError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => Ok(items.iter().map(element_bytes).collect()),
        Value::String(text) => {
            if let Some(bytes) = dotnet_base64(text) {
                return Ok(vec![bytes]);
            }
            if looks_like_json(text) {
                let parsed: Value = serde_json::from_str(text)
                    .map_err(|e| OutputError::InvalidJson(e.to_string()))?;
                return Ok(match parsed {
                    Value::Array(items) => items.iter().map(element_bytes).collect(),
                    other => vec![element_bytes(&other)],
                });
            }
            Ok(vec![text.as_bytes().to_vec()])
        }
        other => Ok(vec![element_bytes(other)]),
    }
}

/// The message texts for an output value, encoded and size-checked: all of them or an error,
/// so that a caller sends nothing when one would be refused.
pub fn encoded_messages(
    value: &Value,
    encoding: MessageEncoding,
) -> Result<Vec<String>, OutputError> {
    let mut texts = Vec::new();
    for (index, bytes) in output_binding_messages(value)?.iter().enumerate() {
        let text = encoding.encode(bytes).ok_or(OutputError::NotText)?;
        if text.len() > MAX_MESSAGE_TEXT_BYTES {
            return Err(OutputError::TooLarge {
                index,
                size: text.len(),
                limit: MAX_MESSAGE_TEXT_BYTES,
            });
        }
        texts.push(text);
    }
    Ok(texts)
}

/// The encoded size of the largest message an output value makes (0 for none): what a producer
/// compares with [`MAX_MESSAGE_TEXT_BYTES`] before handing a value to the binding.
pub fn largest_encoded_size(
    value: &Value,
    encoding: MessageEncoding,
) -> Result<usize, OutputError> {
    Ok(output_binding_messages(value)?
        .iter()
        .map(|bytes| encoded_len(bytes.len(), encoding))
        .max()
        .unwrap_or(0))
}

fn encoded_len(raw: usize, encoding: MessageEncoding) -> usize {
    match encoding {
        MessageEncoding::Base64 => raw.div_ceil(3) * 4,
        MessageEncoding::None => raw,
    }
}

/// A message text read back: its bytes and, when they are one, the JSON value they hold.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedMessage {
    /// The message body.
    pub bytes: Vec<u8>,
    /// Whether the text was base64 (and decoded).
    pub was_base64: bool,
}

impl DecodedMessage {
    /// The body as text, when it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }

    /// The body as JSON, when it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.bytes).ok()
    }
}

/// Reads a message text whose encoding is not known (`hubspoke results`): base64 when it
/// decodes to UTF-8, else the text itself.
pub fn decode_text(text: &str) -> DecodedMessage {
    match dotnet_base64(text).filter(|bytes| std::str::from_utf8(bytes).is_ok()) {
        Some(bytes) if !text.trim().is_empty() => DecodedMessage {
            bytes,
            was_base64: true,
        },
        _ => DecodedMessage {
            bytes: text.as_bytes().to_vec(),
            was_base64: false,
        },
    }
}

/// Json.NET's `JToken.ToString()` (indented) of a JSON value read with Json.NET's default date
/// handling (date-looking strings become dates and print back normalised).
pub fn json_net_indented(value: &Value) -> String {
    let mut out = String::new();
    write_indented(value, 0, true, &mut out);
    out
}

/// Json.NET's `JToken.ToString()` (indented) of a JSON value read with `DateParseHandling.None`
/// (strings kept as they are), as the Event Grid extension reads events.
pub fn json_net_indented_verbatim(value: &Value) -> String {
    let mut out = String::new();
    write_indented(value, 0, false, &mut out);
    out
}

/// Json.NET's `(string)` cast of a JSON value read with its default date handling, as the
/// Functions host puts the top-level properties of a JSON trigger value into binding data:
/// strings as they are, dates in the invariant culture (`MM/dd/yyyy HH:mm:ss`), numbers as
/// their text, booleans as `True`/`False`. `None` for objects, arrays and null.
pub fn json_net_string_cast(value: &Value) -> Option<String> {
    match value {
        Value::Object(_) | Value::Array(_) | Value::Null => None,
        other => String::from_utf8(element_bytes(other)).ok(),
    }
}

/// .NET's `Convert.FromBase64String`: white space ignored, padding required, the standard
/// alphabet; lenient about the unused bits of the last character.
fn dotnet_base64(text: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
    );
    let compact: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n'))
        .collect();
    if !compact.len().is_multiple_of(4) {
        return None;
    }
    LENIENT.decode(compact).ok()
}

/// The host's `Utility.IsJson`: `{…}` or `[…]` once trimmed.
fn looks_like_json(text: &str) -> bool {
    let trimmed = text.trim();
    (trimmed.starts_with('{') && trimmed.ends_with('}'))
        || (trimmed.starts_with('[') && trimmed.ends_with(']'))
}

/// One message body from one element: `ToString()` of what Json.NET deserialized.
fn element_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::String(text) => match json_net_date(text) {
            // A date string was parsed as a DateTime and prints in the invariant culture.
            Some(date) => date.invariant_culture().into_bytes(),
            None => text.as_bytes().to_vec(),
        },
        Value::Object(_) | Value::Array(_) => json_net_indented(value).into_bytes(),
        // CLR primitives: `true.ToString()` is "True"; doubles print without a forced ".0".
        Value::Bool(true) => b"True".to_vec(),
        Value::Bool(false) => b"False".to_vec(),
        Value::Number(number) => match (number.as_i64(), number.as_u64(), number.as_f64()) {
            (Some(i), _, _) => i.to_string().into_bytes(),
            (_, Some(u), _) => u.to_string().into_bytes(),
            (_, _, Some(f)) => dotnet_double(f, false).into_bytes(),
            _ => number.to_string().into_bytes(),
        },
        Value::Null => Vec::new(),
    }
}

fn write_indented(value: &Value, depth: usize, dates: bool, out: &mut String) {
    match value {
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Object(map) => {
            out.push('{');
            for (index, (key, item)) in map.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                newline(depth + 1, out);
                write_string(key, out);
                out.push_str(": ");
                write_indented(item, depth + 1, dates, out);
            }
            newline(depth, out);
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                newline(depth + 1, out);
                write_indented(item, depth + 1, dates, out);
            }
            newline(depth, out);
            out.push(']');
        }
        Value::String(text) => match json_net_date(text).filter(|_| dates) {
            Some(date) => write_string(&date.iso(), out),
            None => write_string(text, out),
        },
        Value::Number(number) => match (number.as_i64(), number.as_u64(), number.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&dotnet_double(f, true)),
            _ => out.push_str(&number.to_string()),
        },
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
    }
}

fn newline(depth: usize, out: &mut String) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("  ");
    }
}

/// Json.NET's string escaping (`StringEscapeHandling.Default`, double quotes).
fn write_string(text: &str, out: &mut String) {
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
            c if (c as u32) < 0x20 || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// .NET Core's shortest round-trip `double.ToString()`: plain digits for exponents from -5 to
/// 14, else `d.dddE+XX`. Json.NET adds `.0` to a whole number it writes as JSON (`in_json`).
fn dotnet_double(value: f64, in_json: bool) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let scientific = format!("{value:e}"); // shortest digits: "1.5e-7", "1e20"
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let text = if (-5..15).contains(&exponent) {
        format!("{value}")
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}E{sign}{:02}", exponent.abs())
    };
    if in_json && !text.contains(['.', 'E']) {
        format!("{text}.0")
    } else {
        text
    }
}

/// A string Json.NET's reader takes for a date (`yyyy-MM-ddTHH:mm:ss[.f{1,7}][Z]`).
struct JsonNetDate {
    date_time: String,
    fraction: String,
    utc: bool,
}

impl JsonNetDate {
    /// How Json.NET writes it back: ISO 8601, fraction without trailing zeros.
    fn iso(&self) -> String {
        let fraction = self.fraction.trim_end_matches('0');
        let mut out = self.date_time.clone();
        if !fraction.is_empty() {
            out.push('.');
            out.push_str(fraction);
        }
        if self.utc {
            out.push('Z');
        }
        out
    }

    /// `DateTime.ToString(CultureInfo.InvariantCulture)`: `MM/dd/yyyy HH:mm:ss`.
    fn invariant_culture(&self) -> String {
        let d = &self.date_time;
        format!("{}/{}/{} {}", &d[5..7], &d[8..10], &d[0..4], &d[11..19])
    }
}

fn json_net_date(text: &str) -> Option<JsonNetDate> {
    let bytes = text.as_bytes();
    if bytes.len() < 19 {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    let shape = digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && bytes[10] == b'T'
        && digits(11..13)
        && bytes[13] == b':'
        && digits(14..16)
        && bytes[16] == b':'
        && digits(17..19);
    if !shape {
        return None;
    }
    let mut rest = &text[19..];
    let mut fraction = String::new();
    if let Some(after_dot) = rest.strip_prefix('.') {
        let count = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=7).contains(&count) {
            return None;
        }
        fraction = after_dot[..count].to_string();
        rest = &after_dot[count..];
    }
    let utc = match rest {
        "Z" => true,
        "" => false,
        _ => return None,
    };
    let number = |range: std::ops::Range<usize>| text[range].parse::<u32>().unwrap_or(99);
    let valid = (1..=12).contains(&number(5..7))
        && (1..=31).contains(&number(8..10))
        && number(11..13) < 24
        && number(14..16) < 60
        && number(17..19) < 60;
    valid.then(|| JsonNetDate {
        date_time: text[..19].to_string(),
        fraction,
        utc,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_are_indented_as_json_net_writes_them() {
        let value = json!({"schema": "hubspoke.outcome/v1", "hubs": [{"status": "changed", "changes": []}], "empty": {}, "n": 3, "ok": true, "none": null});
        assert_eq!(
            json_net_indented(&value),
            "{\n  \"schema\": \"hubspoke.outcome/v1\",\n  \"hubs\": [\n    {\n      \"status\": \"changed\",\n      \"changes\": []\n    }\n  ],\n  \"empty\": {},\n  \"n\": 3,\n  \"ok\": true,\n  \"none\": null\n}"
        );
    }

    #[test]
    fn strings_numbers_and_dates_follow_json_net() {
        assert_eq!(
            json_net_indented(&json!("a\"b\\c\n\u{1}\u{2028}é")),
            "\"a\\\"b\\\\c\\n\\u0001\\u2028é\""
        );
        assert_eq!(json_net_indented(&json!(1.0)), "1.0");
        assert_eq!(json_net_indented(&json!(1.5)), "1.5");
        assert_eq!(json_net_indented(&json!(1e20)), "1E+20");
        assert_eq!(json_net_indented(&json!(0.0000015)), "1.5E-06");
        assert_eq!(json_net_indented(&json!(0.0001)), "0.0001");
        assert_eq!(
            json_net_indented(&json!("2026-11-30T02:26:30.1200Z")),
            "\"2026-11-30T02:26:30.12Z\""
        );
        assert_eq!(
            json_net_indented(&json!("2026-11-30T02:26:30.000Z")),
            "\"2026-11-30T02:26:30Z\""
        );
        assert_eq!(
            json_net_indented(&json!("2026-11-30T02:26:30+02:00")),
            "\"2026-11-30T02:26:30+02:00\"",
            "offsets are left alone (not imitated)"
        );
    }

    #[test]
    fn an_array_is_one_message_per_element() {
        let messages = output_binding_messages(&json!([{"a": 1}, "text", 2, [true]])).unwrap();
        let texts: Vec<String> = messages
            .into_iter()
            .map(|m| String::from_utf8(m).unwrap())
            .collect();
        assert_eq!(texts, ["{\n  \"a\": 1\n}", "text", "2", "[\n  true\n]"]);
    }

    #[test]
    fn strings_are_tried_as_base64_then_as_json() {
        // "done" is valid base64: the host writes its decoded bytes, not the word.
        assert_eq!(
            output_binding_messages(&json!("done")).unwrap(),
            vec![STANDARD.decode("done").unwrap()]
        );
        assert_eq!(
            output_binding_messages(&json!("{\"a\":1}")).unwrap(),
            vec![b"{\n  \"a\": 1\n}".to_vec()]
        );
        assert_eq!(output_binding_messages(&json!("[1,2]")).unwrap().len(), 2);
        assert_eq!(
            output_binding_messages(&json!("hello world")).unwrap(),
            vec![b"hello world".to_vec()]
        );
        assert!(matches!(
            output_binding_messages(&json!("{not json}")),
            Err(OutputError::InvalidJson(_))
        ));
        assert!(output_binding_messages(&Value::Null).unwrap().is_empty());
    }

    #[test]
    fn messages_are_base64_and_round_trip() {
        let value = json!({"id": "x"});
        let texts = encoded_messages(&value, MessageEncoding::Base64).unwrap();
        assert_eq!(texts, vec![STANDARD.encode("{\n  \"id\": \"x\"\n}")]);
        let decoded = decode_text(&texts[0]);
        assert!(decoded.was_base64);
        assert_eq!(decoded.json(), Some(value));
        let plain = decode_text("{\"plain\": true}");
        assert!(!plain.was_base64);
        assert_eq!(plain.json(), Some(json!({"plain": true})));
        assert_eq!(MessageEncoding::Base64.decode("not base64!"), None);
    }

    #[test]
    fn the_size_limit_is_checked_after_encoding() {
        // 48 KiB of raw text is exactly 64 KiB in base64.
        let fits = json!("x".repeat(48 * 1024 - 2));
        assert!(encoded_messages(&fits, MessageEncoding::Base64).is_ok());
        let big = json!({"text": "x".repeat(48 * 1024)});
        let error = encoded_messages(&big, MessageEncoding::Base64).unwrap_err();
        assert!(matches!(error, OutputError::TooLarge { index: 0, .. }));
        assert!(
            largest_encoded_size(&big, MessageEncoding::Base64).unwrap() > MAX_MESSAGE_TEXT_BYTES
        );
        assert_eq!(
            largest_encoded_size(&big, MessageEncoding::Base64).unwrap(),
            encoded_len(json_net_indented(&big).len(), MessageEncoding::Base64)
        );
    }
}
