//! [`ClientInfo`] for handlers: the peer address (or, behind `AUTHD_TRUSTED_PROXIES`, the
//! client named by `X-Forwarded-For`) and the User-Agent.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use poem::http::header;
use poem::{FromRequest, Request, RequestBody};

use crate::domain::ClientInfo;
use crate::state::AppState;

impl<'a> FromRequest<'a> for ClientInfo {
    async fn from_request(request: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        Ok(request_client(request))
    }
}

/// The client of a request, behind the app's trusted proxies.
pub(super) fn request_client(request: &Request) -> ClientInfo {
    let trusted = request
        .data::<AppState>()
        .map(|state| state.settings.trusted_proxies.as_slice())
        .unwrap_or_default();
    client_info(request, trusted)
}

pub(super) fn client_info(request: &Request, trusted: &[IpNet]) -> ClientInfo {
    let peer = request
        .remote_addr()
        .as_socket_addr()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |addr| addr.ip());
    let forwarded_for: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok());
    ClientInfo::new(peer, &forwarded_for, trusted, user_agent)
}
