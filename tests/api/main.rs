//! The one integration-test binary: every test speaks HTTP to the real app.

mod helpers;

mod audit;
mod authz;
mod bodies;
mod cli;
mod concurrency;
mod conflict;
mod cors;
mod crash;
mod deploy;
mod django;
mod django_import;
mod email;
mod faults;
mod guard;
mod hostile;
mod import_rules;
mod indexes;
mod instances;
mod keys;
mod layout;
mod lifecycle;
mod load;
mod login;
mod logs;
#[cfg(feature = "mysql")]
mod mariadb;
mod metrics;
mod nginx;
mod oauth;
mod openapi;
mod passwords;
mod rates;
mod readiness;
mod register;
mod routing;
mod scopes;
mod slow_clients;
mod smtp;
mod throttle;
mod tls;
mod upgrade;
mod users;
mod verify;
mod wire;
