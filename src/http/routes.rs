//! The one route table of the DRF-speaking API: the gate matches requests against it (and
//! sends the 301s, the `Allow` headers and the 405-versus-401 answers from it), and the
//! OpenAPI document takes its paths from it. Endpoints that do not speak DRF (health, docs)
//! are mounted beside the gate, not listed here.

/// Who the view as a whole admits, which decides how an unmapped method is answered: DRF runs
/// the permission check first, so an anonymous caller hears 401 where authentication is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Anyone,
    Authenticated,
}

/// How a route speaks: DRF's rules behind the gate, or RFC 6749's beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Drf,
    OAuth,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ApiRoute {
    /// As clients call it, with djoser's trailing slash; `{id}` matches one path segment.
    pub path: &'static str,
    /// DRF's `Allow` header for the route.
    pub allow: &'static str,
    /// Djoser's router URLs need the slash (301 otherwise); token URLs match with or without.
    pub slash_optional: bool,
    pub access: Access,
    /// Methods djoser lets anyone call where the view as a whole needs authentication
    /// (sign-up, activation, the reset flows).
    pub anonymous_methods: &'static [&'static str],
    pub dialect: Dialect,
    /// Counted by DRF's request-rate throttles. Forward auth is not: a proxy asks once per
    /// request it serves, so one page would spend a user's whole budget.
    pub throttled: bool,
}

impl ApiRoute {
    /// The methods the API implements (HEAD and OPTIONS are answered by the gate).
    pub fn methods(&self) -> impl Iterator<Item = &'static str> {
        self.allow
            .split(", ")
            .filter(|method| !matches!(*method, "HEAD" | "OPTIONS"))
    }

    /// Whether an anonymous caller passes DRF's permission check, which runs before the
    /// throttles (an anonymous caller refused with 401 is not counted).
    pub fn admits_anonymous(&self, method: &str) -> bool {
        self.access == Access::Anyone || self.anonymous_methods.contains(&method)
    }

    /// Whether a path (without its trailing slash) names this route.
    fn matches(&self, path: &str) -> bool {
        let pattern = self.path.trim_matches('/').split('/');
        let mut segments = path.trim_start_matches('/').split('/');
        for expected in pattern {
            let Some(segment) = segments.next() else {
                return false;
            };
            let fits = match expected {
                // djoser's lookup: `[^/.]+`.
                "{id}" => !segment.is_empty() && !segment.contains('.'),
                literal => literal == segment,
            };
            if !fits {
                return false;
            }
        }
        segments.next().is_none()
    }
}

const USER_ACTION: ApiRoute = ApiRoute {
    path: "",
    allow: "POST, OPTIONS",
    slash_optional: false,
    access: Access::Authenticated,
    anonymous_methods: &[],
    dialect: Dialect::Drf,
    throttled: true,
};

const TOKEN_ROUTE: ApiRoute = ApiRoute {
    path: "",
    allow: "POST, OPTIONS",
    slash_optional: true,
    access: Access::Authenticated,
    anonymous_methods: &[],
    dialect: Dialect::Drf,
    throttled: true,
};

const OAUTH: ApiRoute = ApiRoute {
    path: "",
    allow: "POST, OPTIONS",
    slash_optional: true,
    access: Access::Anyone,
    anonymous_methods: &[],
    dialect: Dialect::OAuth,
    throttled: true,
};

/// djoser's routes, in the order its URL patterns match (actions before `/users/{id}/`), then
/// authd's session routes and the OAuth2 endpoints mounted beside the gate.
pub static ROUTES: &[ApiRoute] = &[
    ApiRoute {
        path: "/users/",
        allow: "GET, POST, HEAD, OPTIONS",
        anonymous_methods: &["POST"],
        ..USER_ACTION
    },
    ApiRoute {
        path: "/users/me/",
        allow: "GET, PUT, PATCH, DELETE, HEAD, OPTIONS",
        ..USER_ACTION
    },
    ApiRoute {
        path: "/users/me/events/",
        allow: "GET, HEAD, OPTIONS",
        ..USER_ACTION
    },
    ApiRoute {
        path: "/users/activation/",
        anonymous_methods: &["POST"],
        ..USER_ACTION
    },
    ApiRoute {
        path: "/users/resend_activation/",
        anonymous_methods: &["POST"],
        ..USER_ACTION
    },
    ApiRoute {
        path: "/users/set_password/",
        ..USER_ACTION
    },
    ApiRoute {
        path: "/users/reset_password/",
        anonymous_methods: &["POST"],
        ..USER_ACTION
    },
    ApiRoute {
        path: "/users/reset_password_confirm/",
        anonymous_methods: &["POST"],
        ..USER_ACTION
    },
    ApiRoute {
        path: "/users/set_username/",
        ..USER_ACTION
    },
    ApiRoute {
        path: "/users/reset_username/",
        anonymous_methods: &["POST"],
        ..USER_ACTION
    },
    ApiRoute {
        path: "/users/reset_username_confirm/",
        anonymous_methods: &["POST"],
        ..USER_ACTION
    },
    ApiRoute {
        path: "/users/{id}/",
        allow: "GET, PUT, PATCH, DELETE, HEAD, OPTIONS",
        ..USER_ACTION
    },
    ApiRoute {
        path: "/users/{id}/groups/",
        allow: "GET, PUT, HEAD, OPTIONS",
        ..USER_ACTION
    },
    ApiRoute {
        path: "/users/{id}/permissions/",
        allow: "GET, PUT, HEAD, OPTIONS",
        ..USER_ACTION
    },
    ApiRoute {
        path: "/users/{id}/roles/",
        allow: "GET, PATCH, HEAD, OPTIONS",
        ..USER_ACTION
    },
    ApiRoute {
        path: "/permissions/",
        allow: "GET, POST, HEAD, OPTIONS",
        ..USER_ACTION
    },
    ApiRoute {
        path: "/permissions/{id}/",
        allow: "GET, PATCH, DELETE, HEAD, OPTIONS",
        ..USER_ACTION
    },
    ApiRoute {
        path: "/groups/",
        allow: "GET, POST, HEAD, OPTIONS",
        ..USER_ACTION
    },
    ApiRoute {
        path: "/groups/{id}/",
        allow: "GET, PUT, PATCH, DELETE, HEAD, OPTIONS",
        ..USER_ACTION
    },
    ApiRoute {
        path: "/token/login/",
        access: Access::Anyone,
        ..TOKEN_ROUTE
    },
    ApiRoute {
        path: "/token/logout/",
        ..TOKEN_ROUTE
    },
    ApiRoute {
        path: "/token/logoutall/",
        ..TOKEN_ROUTE
    },
    ApiRoute {
        path: "/token/sessions/",
        allow: "GET, HEAD, OPTIONS",
        ..TOKEN_ROUTE
    },
    ApiRoute {
        path: "/token/sessions/{id}/",
        allow: "DELETE, OPTIONS",
        ..TOKEN_ROUTE
    },
    ApiRoute {
        path: "/token/keys/",
        allow: "GET, POST, HEAD, OPTIONS",
        ..TOKEN_ROUTE
    },
    ApiRoute {
        path: "/token/keys/{id}/",
        allow: "DELETE, OPTIONS",
        ..TOKEN_ROUTE
    },
    ApiRoute {
        path: "/token/verify/",
        allow: "GET, HEAD, OPTIONS",
        throttled: false,
        ..TOKEN_ROUTE
    },
    ApiRoute {
        path: "/oauth/token",
        ..OAUTH
    },
    ApiRoute {
        path: "/oauth/revoke",
        ..OAUTH
    },
    ApiRoute {
        path: "/oauth/introspect",
        ..OAUTH
    },
];

/// The DRF route a request path names, trailing slash or not.
pub fn find(path: &str) -> Option<&'static ApiRoute> {
    let path = path.trim_end_matches('/');
    ROUTES
        .iter()
        .find(|route| route.dialect == Dialect::Drf && route.matches(path))
}

/// The endpoints mounted beside the table: health checks and docs (paths without the prefix).
pub const UNLISTED: [&str; 5] = [
    "/healthz",
    "/readyz",
    "/docs",
    "/openapi.json",
    "/openapi.yaml",
];

/// The metrics `route` label of a path without the URL prefix: the template of the route it
/// names (`/users/{id}/`), or `unmatched`. Never the path itself, which the client chose.
pub fn template(path: &str) -> &'static str {
    if let Some(unlisted) = UNLISTED.iter().find(|unlisted| **unlisted == path) {
        return unlisted;
    }
    let path = path.trim_end_matches('/');
    ROUTES
        .iter()
        .find(|route| route.matches(path))
        .map_or("unmatched", |route| route.path)
}

/// The route behind a path as poem-openapi writes it (no trailing slash, `{id}` parameters).
pub fn documented(generated: &str) -> Option<&'static ApiRoute> {
    ROUTES
        .iter()
        .find(|route| route.path.trim_end_matches('/') == generated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_of(path: &str) -> Option<&'static str> {
        find(path).map(|route| route.path)
    }

    #[test]
    fn routes_match_djosers_patterns() {
        assert_eq!(path_of("/users"), Some("/users/"));
        assert_eq!(path_of("/users/me/"), Some("/users/me/"));
        assert_eq!(path_of("/users/42"), Some("/users/{id}/"));
        assert_eq!(path_of("/users/abc"), Some("/users/{id}/"));
        assert_eq!(path_of("/users/me.json"), None);
        assert_eq!(path_of("/users/set_password"), Some("/users/set_password/"));
        assert_eq!(path_of("/token/login"), Some("/token/login/"));
        assert_eq!(path_of("/token/verify"), Some("/token/verify/"));
        assert_eq!(path_of("/nothing"), None);
        assert_eq!(path_of("/users/1/extra"), None);
        assert_eq!(path_of("/"), None);
    }

    #[test]
    fn metrics_label_paths_by_their_template_and_nothing_else() {
        assert_eq!(template("/users/42/"), "/users/{id}/");
        assert_eq!(template("/users/me/"), "/users/me/");
        assert_eq!(template("/token/login"), "/token/login/");
        assert_eq!(template("/oauth/token"), "/oauth/token");
        assert_eq!(template("/healthz"), "/healthz");
        assert_eq!(template("/openapi.json"), "/openapi.json");
        assert_eq!(template("/nothing/"), "unmatched");
        assert_eq!(template("/users/1/extra/"), "unmatched");
        assert_eq!(template("/users/{\"a\"}\n/"), "/users/{id}/");
        assert_eq!(template(&"/x".repeat(10_000)), "unmatched");
    }

    #[test]
    fn allow_lists_head_with_get_and_always_options() {
        for route in ROUTES {
            let methods: Vec<&str> = route.methods().collect();
            let mut expected = methods.join(", ");
            if methods.contains(&"GET") {
                expected.push_str(", HEAD");
            }
            expected.push_str(", OPTIONS");
            assert_eq!(route.allow, expected, "{}", route.path);
        }
    }
}
