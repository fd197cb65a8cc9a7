//! djoser's `uid`: the user id in URL-safe base64 without padding (`1` → `MQ`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub fn encode(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(id.to_string())
}

/// Django's lenient decoding: characters outside the alphabet are dropped, padding is
/// optional, the text is then read as a whole number. Anything else is `None`.
pub fn decode(uid: &str) -> Option<i64> {
    let cleaned: String = uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let bytes = URL_SAFE_NO_PAD.decode(cleaned.as_bytes()).ok()?;
    std::str::from_utf8(&bytes).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_django() {
        assert_eq!(encode(1), "MQ");
        assert_eq!(encode(10), "MTA");
        assert_eq!(encode(123), "MTIz");
        assert_eq!(decode("MQ"), Some(1));
        assert_eq!(decode("MQ=="), Some(1));
        assert_eq!(decode("M!Q"), Some(1));
        assert_eq!(decode("wrong-uid"), None);
        assert_eq!(decode("x"), None);
        assert_eq!(decode(""), None);
    }
}
