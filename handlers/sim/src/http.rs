//! HTTP answers and queries as every endpoint of the simulator writes and reads them: JSON
//! responses, ARM's error answers, and percent-decoded query parameters.
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_json::Value;

use crate::world::ArmError;

pub(crate) type HttpResponse = Response<Full<Bytes>>;

pub(crate) fn json_response(
    status: u16,
    body: &Value,
    headers: &[(String, String)],
) -> HttpResponse {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let (builder, bytes) = if body.is_null() {
        (builder, Bytes::new())
    } else {
        (
            builder.header("content-type", "application/json; charset=utf-8"),
            Bytes::from(body.to_string()),
        )
    };
    builder
        .body(Full::new(bytes))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"{}"))))
}

pub(crate) fn error_response(
    error: &ArmError,
    headers: &mut Vec<(String, String)>,
) -> HttpResponse {
    if let Some(retry) = error.retry_after {
        headers.push(("Retry-After".to_string(), retry.to_string()));
    }
    if error.status == 404 && error.code == "ResourceNotFound" {
        headers.push(("x-ms-failure-cause".to_string(), "gateway".to_string()));
    }
    json_response(error.status, &error.body(), headers)
}

/// Percent-decodes a query component.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query parameters, decoded, in order.
pub(crate) fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(pair), String::new()),
        })
        .collect()
}

/// The first value of a query parameter, matched case-insensitively.
pub(crate) fn query_value<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_decoded() {
        let q = parse_query(Some("api-version=2026-01-01&%24skiptoken=5&x"));
        assert_eq!(query_value(&q, "API-VERSION"), Some("2026-01-01"));
        assert_eq!(query_value(&q, "$skiptoken"), Some("5"));
        assert_eq!(percent_decode("a%2Fb%zz"), "a/b%zz");
    }
}
