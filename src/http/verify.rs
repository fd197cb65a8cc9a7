//! `GET /token/verify/`: forward auth for reverse proxies (nginx `auth_request`, Traefik
//! ForwardAuth, Caddy `forward_auth`). The gate has authenticated the token (from the cache,
//! as for any route) and, for this route only, counted nothing against the request-rate
//! throttles; the answer is 204 with who the caller is, in headers the proxy copies onto the
//! request it forwards.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use poem_openapi::param::Query;
use poem_openapi::{ApiResponse, OpenApi};

use crate::auth::Caller;
use crate::domain::messages;

use super::ApiTags;
use super::error::ApiError;
use super::security::Authenticated;

/// RFC 3986's unreserved characters stay as they are; every other byte is percent-encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The identity headers' values together stay under this many bytes, so that the whole
/// answer (status line, names and the gate's headers included) fits nginx's default 4 KiB
/// buffer for a proxied response's headers.
const IDENTITY_BUDGET: usize = 3 * 1024;

#[derive(ApiResponse)]
enum Verified {
    /// The token is valid and holds every `permission` asked for. The identity headers are
    /// always sent, empty when there is nothing to say; values are percent-encoded UTF-8 (RFC
    /// 3986's unreserved characters kept), lists are joined with `,`.
    #[oai(status = 204)]
    Identity(
        /// The user's id, in decimal.
        #[oai(header = "X-Authd-User-Id")]
        i64,
        /// The username, percent-encoded.
        #[oai(header = "X-Authd-Username")]
        String,
        /// The user's groups' names, each percent-encoded, joined with `,`; empty for a scoped
        /// token (its authority is its scope).
        #[oai(header = "X-Authd-Groups")]
        String,
        /// The permissions the token is limited to, each percent-encoded, joined with `,`;
        /// empty for an unscoped token (one that may do whatever its user may).
        #[oai(header = "X-Authd-Scope")]
        String,
        /// `1` when list items were left out (from the end) to keep the identity headers
        /// within 3 KiB; absent otherwise.
        #[oai(header = "X-Authd-Truncated")]
        Option<u8>,
    ),
}

pub struct VerifyApi;

#[OpenApi(tag = "ApiTags::Token")]
impl VerifyApi {
    /// Forward auth
    ///
    /// For a reverse proxy's auth subrequest (see docs/forward-auth.md): 204 with the caller's
    /// identity in headers, or DRF's 401 for a missing or invalid token (a refresh token is
    /// invalid here). Not counted by the request-rate throttles. Reads no body.
    #[oai(path = "/token/verify", method = "get", operation_id = "token_verify")]
    async fn verify(
        &self,
        auth: Authenticated,
        /// `app_label.codename`; repeatable, and every one is required (403 otherwise). An
        /// unknown name is missing, except for an active superuser.
        #[oai(default)]
        permission: Query<Vec<String>>,
    ) -> Result<Verified, ApiError> {
        let caller = auth.caller();
        if !caller.has_perms(&permission.0) {
            return Err(ApiError::Forbidden(messages::PERMISSION_DENIED));
        }
        let identity = Identity::of(caller, IDENTITY_BUDGET);
        Ok(Verified::Identity(
            caller.user.id,
            identity.username,
            identity.groups,
            identity.scope,
            identity.truncated.then_some(1),
        ))
    }
}

/// The identity headers' values, encoded and within their budget.
#[derive(Debug, PartialEq, Eq)]
struct Identity {
    username: String,
    groups: String,
    scope: String,
    truncated: bool,
}

impl Identity {
    /// The username always goes whole (Django caps it at 150 characters); the scope, then the
    /// groups, get what is left, whole names only.
    fn of(caller: &Caller, budget: usize) -> Self {
        Self::encode(
            caller.user.id,
            &caller.user.username,
            match caller.is_scoped() {
                true => &[],
                false => &caller.grants.groups,
            },
            caller.scope().unwrap_or_default(),
            budget,
        )
    }

    fn encode(
        user_id: i64,
        username: &str,
        groups: &[String],
        scope: &[String],
        budget: usize,
    ) -> Self {
        let username = utf8_percent_encode(username, UNRESERVED).to_string();
        let mut left = budget.saturating_sub(user_id.to_string().len() + username.len());
        let mut truncated = false;
        let scope = join_within(scope, &mut left, &mut truncated);
        let groups = join_within(groups, &mut left, &mut truncated);
        Self {
            username,
            groups,
            scope,
            truncated,
        }
    }
}

/// The items percent-encoded and joined with `,`, as many as fit in `left` from the start;
/// the rest are left out and `truncated` says so.
fn join_within(items: &[String], left: &mut usize, truncated: &mut bool) -> String {
    let mut joined = String::new();
    for item in items {
        let encoded = utf8_percent_encode(item, UNRESERVED).to_string();
        let cost = encoded.len() + usize::from(!joined.is_empty());
        if cost > *left {
            *truncated = true;
            break;
        }
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(&encoded);
        *left -= cost;
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn keeps_only_unreserved_characters() {
        let identity = Identity::encode(
            7,
            "zoë.o-k_~ x+y@z",
            &names(&["a,b", "plain", "50%/öl"]),
            &names(&["blog.add_post"]),
            IDENTITY_BUDGET,
        );
        assert_eq!(
            identity,
            Identity {
                username: "zo%C3%AB.o-k_~%20x%2By%40z".into(),
                groups: "a%2Cb,plain,50%25%2F%C3%B6l".into(),
                scope: "blog.add_post".into(),
                truncated: false,
            }
        );
    }

    #[test]
    fn nothing_to_say_is_empty() {
        let identity = Identity::encode(1, "a", &[], &[], IDENTITY_BUDGET);
        assert_eq!(
            (identity.groups.as_str(), identity.scope.as_str()),
            ("", "")
        );
        assert!(!identity.truncated);
    }

    #[test]
    fn drops_whole_items_from_the_end_to_stay_within_the_budget() {
        // 2 bytes of id and 3 of username leave 10: "aaaa,bbbb" (9) fits, ",c" would not.
        let identity = Identity::encode(10, "bob", &names(&["aaaa", "bbbb", "c"]), &[], 15);
        assert_eq!(identity.groups, "aaaa,bbbb");
        assert!(identity.truncated);
        // Exactly filling the budget is not truncating.
        let exact = Identity::encode(10, "bob", &names(&["aaaa", "bbbb"]), &[], 14);
        assert_eq!(
            (exact.groups.as_str(), exact.truncated),
            ("aaaa,bbbb", false)
        );
        // Encoding counts: "ä" is six bytes once encoded.
        let encoded = Identity::encode(10, "bob", &names(&["ä", "x"]), &[], 10);
        assert_eq!((encoded.groups.as_str(), encoded.truncated), ("", true));
    }

    #[test]
    fn the_scope_is_served_before_the_groups() {
        let identity = Identity::encode(1, "a", &names(&["group"]), &names(&["app.perm"]), 10);
        assert_eq!(
            (
                identity.scope.as_str(),
                identity.groups.as_str(),
                identity.truncated
            ),
            ("app.perm", "", true)
        );
    }

    #[test]
    fn many_long_groups_stay_within_the_budget() {
        let groups: Vec<String> = (0..200)
            .map(|i| format!("group-{i:03}-{}", "é".repeat(40)))
            .collect();
        let identity = Identity::encode(i64::MAX, &"ü".repeat(150), &groups, &[], IDENTITY_BUDGET);
        let total = i64::MAX.to_string().len() + identity.username.len() + identity.groups.len();
        assert!(total <= IDENTITY_BUDGET, "{total}");
        assert!(identity.truncated);
        assert!(identity.groups.starts_with("group-000-"));
    }
}
